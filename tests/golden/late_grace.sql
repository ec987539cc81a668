-- A late record within the grace period updates its window; one after it is dropped.
CREATE STREAM ticks (ts TIMESTAMP) WITH (topic = 'ticks', timestamp = 'ts');

CREATE TABLE ticks_per_10s WITH (grace = INTERVAL '5' SECOND, idle_timeout = 60000) AS
  SELECT window_start, window_end, COUNT(*) AS n
  FROM TUMBLE(ticks, ts, INTERVAL '10' SECOND)
  GROUP BY window_start, window_end
  EMIT FINAL;
