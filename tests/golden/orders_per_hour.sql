-- Orders received per hour: a tumbling window that emits once, when it closes.
CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DECIMAL(12,2), status TEXT, ts TIMESTAMP)
  WITH (topic = 'orders', timestamp = 'ts', watermark_delay = INTERVAL '5' SECOND);

CREATE TABLE orders_per_hour WITH (idle_timeout = 60000) AS
  SELECT window_start, window_end, COUNT(*) AS orders
  FROM TUMBLE(orders, ts, INTERVAL '1' HOUR)
  GROUP BY window_start, window_end
  EMIT FINAL;
