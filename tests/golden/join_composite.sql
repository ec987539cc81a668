-- An inner join on a two-column primary key; unmatched stream records are dropped.
CREATE TABLE prices (region TEXT, sku TEXT, price DECIMAL(6,2), PRIMARY KEY (region, sku))
  WITH (topic = 'prices');
CREATE STREAM sales (region TEXT, sku TEXT, qty BIGINT) WITH (topic = 'sales');

CREATE STREAM sales_valued AS
  SELECT s.region, s.sku, s.qty, p.price, s.qty * p.price AS total
  FROM sales s JOIN prices p ON s.region = p.region AND s.sku = p.sku;
