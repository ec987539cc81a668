-- Session windows: a gap of ten seconds ends a session; an event out of order joins two.
CREATE STREAM visits (user TEXT, ts TIMESTAMP) WITH (topic = 'visits', timestamp = 'ts');

CREATE TABLE sessions WITH (idle_timeout = 60000) AS
  SELECT user, window_start, window_end, COUNT(*) AS n
  FROM SESSION(visits, ts, INTERVAL '10' SECOND)
  GROUP BY user, window_start, window_end
  EMIT FINAL;
