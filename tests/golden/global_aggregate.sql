-- No GROUP BY: the whole stream is one group.
CREATE STREAM xs (x BIGINT) WITH (topic = 'xs');

CREATE TABLE x_stats AS
  SELECT COUNT(*) AS n, SUM(x) AS s, MAX(x) AS m, EARLIEST_BY_OFFSET(x) AS first,
         LATEST_BY_OFFSET(x) AS last, AVG(x) AS avg
  FROM xs;
