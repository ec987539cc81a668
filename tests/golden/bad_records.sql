-- A value of the wrong type, or a value that is not an object, is an error of that record.
CREATE STREAM nums (n BIGINT) WITH (topic = 'nums');

CREATE STREAM nums_x10 AS SELECT n * 10 AS m FROM nums;
