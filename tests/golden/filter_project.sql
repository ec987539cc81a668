-- Filter and projection: functions, CASE, CAST, LIKE, IN, nested JSON fields.
CREATE STREAM clicks (user_id TEXT, page TEXT, ms BIGINT, meta JSON, price DECIMAL(8,2))
  WITH (topic = 'clicks');

CREATE STREAM clicks_out AS
  SELECT UPPER(user_id) AS who,
         SUBSTRING(page, 2) AS path,
         CASE WHEN ms >= 1000 THEN 'slow' WHEN ms IS NULL THEN 'unknown' ELSE 'fast' END AS speed,
         CAST(ms AS DOUBLE) / 1000 AS seconds,
         meta->'device'->>'os' AS os,
         meta['tags'][1] AS second_tag,
         price * 2 AS double_price,
         COALESCE(page LIKE '/c%', false) AS is_c
  FROM clicks
  WHERE user_id IN ('alice', 'bob', 'carol', 'dave', 'eve') AND page <> '/admin';
