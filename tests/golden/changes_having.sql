-- An aggregate per key with every change emitted, filtered by HAVING.
CREATE STREAM buys (user TEXT, amount BIGINT) WITH (topic = 'buys');

CREATE TABLE repeat_buyers AS
  SELECT user, COUNT(*) AS n, SUM(amount) AS total
  FROM buys
  GROUP BY user
  HAVING COUNT(*) >= 2
  EMIT CHANGES;
