-- Active users over a hopping five-minute window, sliding by a minute.
CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DECIMAL(12,2), status TEXT, ts TIMESTAMP)
  WITH (topic = 'orders', timestamp = 'ts');

CREATE TABLE active_users WITH (idle_timeout = 60000) AS
  SELECT window_start, window_end, COUNT(DISTINCT user_id) AS active_users
  FROM HOP(orders, ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTES)
  GROUP BY window_start, window_end
  EMIT FINAL;
