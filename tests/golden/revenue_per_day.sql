-- Revenue per day of paid orders, summed exactly.
CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DECIMAL(12,2), status TEXT, ts TIMESTAMP)
  WITH (topic = 'orders', timestamp = 'ts');

CREATE TABLE revenue_per_day WITH (idle_timeout = 60000) AS
  SELECT window_start AS day, SUM(amount) AS revenue, COUNT(*) AS paid_orders
  FROM TUMBLE(orders, ts, INTERVAL '1' DAY)
  WHERE status = 'paid'
  GROUP BY window_start, window_end
  EMIT FINAL;
