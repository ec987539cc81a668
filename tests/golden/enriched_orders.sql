-- Orders enriched with their customer: a LEFT JOIN to a table materialized from its topic.
CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, tier TEXT)
  WITH (topic = 'customers');
CREATE STREAM orders (order_id TEXT, user_id TEXT, amount DECIMAL(12,2), status TEXT, ts TIMESTAMP)
  WITH (topic = 'orders', timestamp = 'ts');

CREATE STREAM orders_enriched AS
  SELECT o.order_id, o.amount, c.name, c.tier
  FROM orders o LEFT JOIN customers c ON o.user_id = c.customer_id;
