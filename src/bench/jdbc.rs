//! `weir bench --jdbc`: the JDBC connectors next to plain database work on the same rows, in
//! the same run, against the local PostgreSQL (127.0.0.1:5432, database test):
//!
//! - source: a table of N rows into a topic (incrementing mode) vs a plain keyset-paged
//!   `SELECT` of the same rows, in pages of the same size, decoded by sqlx;
//! - sink: N records of a topic into a table (insert mode) vs plain multi-row `INSERT`s of the
//!   same rows, one transaction per batch of the same size.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Row as _;
use sqlx::postgres::PgPool;

/// Rows per query, statement and transaction on both sides.
const BATCH: usize = 2000;

/// Runs both measurements and returns the report's Markdown table.
pub(super) async fn run(base: &str, rows: u64) -> anyhow::Result<String> {
    let db = PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
    let client = reqwest::Client::new();
    let id = std::process::id();
    let src = format!("bench_jdbc_src_{id}");
    let dst = format!("bench_jdbc_dst_{id}");
    let plain = format!("bench_jdbc_plain_{id}");
    sqlx::raw_sql(&format!(
        "DROP TABLE IF EXISTS {src}, {dst}, {plain};
         CREATE TABLE {src} (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, amount NUMERIC(10,2) NOT NULL,
           at TIMESTAMP NOT NULL DEFAULT now());
         INSERT INTO {src} (name, amount) SELECT 'customer-' || g, g % 100000 / 100.0 FROM generate_series(1, {rows}) g;
         CREATE TABLE {plain} (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(10,2));
         CREATE TABLE {dst} (id BIGINT PRIMARY KEY, name TEXT, amount NUMERIC(10,2));"
    ))
    .execute(&db)
    .await?;

    let select = plain_select(&db, &src).await?;
    let source = source_run(&client, base, &src, rows).await?;
    let insert = plain_insert(&client, base, &format!("jdbc-{src}"), &db, &plain).await?;
    let sink = sink_run(&client, base, &db, &dst, &format!("jdbc-{src}"), rows).await?;
    for name in [format!("bench-src-{src}"), format!("bench-sink-{dst}")] {
        client.delete(format!("{base}/v1/connectors/{name}")).send().await?;
    }
    sqlx::raw_sql(&format!("DROP TABLE {src}, {dst}, {plain}"))
        .execute(&db)
        .await?;

    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    let line = |name: &str, d: Duration, of: Option<Duration>| {
        let share = of.map_or(String::new(), |c| {
            format!("{:.0} %", 100.0 * c.as_secs_f64() / d.as_secs_f64())
        });
        format!("| {name} | {:.0} | {share} |\n", rate(d))
    };
    let mut out = String::from("| Workload | Rows/s | Of ceiling |\n|---|---:|---:|\n");
    out.push_str(&line(
        &format!("JDBC source, PostgreSQL table → topic, {rows} rows"),
        source,
        Some(select),
    ));
    out.push_str(&line("  ceiling: plain keyset-paged SELECT, same rows", select, None));
    out.push_str(&line(
        &format!("JDBC sink, topic → PostgreSQL table, {rows} rows"),
        sink,
        Some(insert),
    ));
    out.push_str(&line(
        "  ceiling: plain multi-row INSERT, same rows and batches",
        insert,
        None,
    ));
    Ok(out)
}

async fn plain_select(db: &PgPool, table: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let sql = format!("SELECT * FROM {table} WHERE id > $1 ORDER BY id LIMIT {BATCH}");
    let mut last = -1i64;
    loop {
        let rows = sqlx::query(&sql).bind(last).fetch_all(db).await?;
        let Some(end) = rows.last() else { break };
        last = end.try_get("id")?;
        for r in &rows {
            let _: (String, rust_decimal::Decimal, chrono::NaiveDateTime) =
                (r.try_get("name")?, r.try_get("amount")?, r.try_get("at")?);
        }
    }
    Ok(started.elapsed())
}

async fn source_run(client: &reqwest::Client, base: &str, table: &str, rows: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let config = json!({"connector.class": "JdbcSource", "connection.url": "jdbc:postgresql://127.0.0.1:5432/test",
        "mode": "incrementing", "incrementing.column.name": "id", "table.whitelist": table, "topic.prefix": "jdbc-",
        "batch.max.rows": BATCH.to_string(), "poll.interval.ms": "10"});
    create(client, base, &format!("bench-src-{table}"), config).await?;
    wait(|| async { Ok(end_offset(client, base, &format!("jdbc-{table}")).await? >= rows) }).await?;
    Ok(started.elapsed())
}

async fn sink_run(
    client: &reqwest::Client,
    base: &str,
    db: &PgPool,
    table: &str,
    topic: &str,
    rows: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let config = json!({"connector.class": "JdbcSink", "connection.url": "jdbc:postgresql://127.0.0.1:5432/test",
        "topics": topic, "table.name.format": table, "fields.whitelist": "id,name,amount",
        "consumer.max.poll.records": BATCH.to_string(), "batch.size": BATCH.to_string()});
    create(client, base, &format!("bench-sink-{table}"), config).await?;
    let count = format!("SELECT count(*) FROM {table}");
    wait(|| async {
        let n: i64 = sqlx::query_scalar(&count).fetch_one(db).await?;
        Ok(n as u64 >= rows)
    })
    .await?;
    Ok(started.elapsed())
}

/// Inserts the topic's rows into `table` by plain multi-row INSERTs, a page of the topic at a
/// time (so that memory stays flat however many rows); the time counts the INSERTs only.
async fn plain_insert(
    client: &reqwest::Client,
    base: &str,
    topic: &str,
    db: &PgPool,
    table: &str,
) -> anyhow::Result<Duration> {
    let mut spent = Duration::ZERO;
    let mut offset = 0;
    loop {
        let values = topic_page(client, base, topic, offset).await?;
        if values.is_empty() {
            return Ok(spent);
        }
        offset += values.len();
        let started = Instant::now();
        insert_rows(db, table, &values).await?;
        spent += started.elapsed();
    }
}

/// The rows as multi-row INSERTs of `BATCH` rows, one transaction each.
async fn insert_rows(db: &PgPool, table: &str, values: &[Value]) -> anyhow::Result<()> {
    for chunk in values.chunks(BATCH) {
        let mut sql = format!("INSERT INTO {table} (id, name, amount) VALUES ");
        for i in 0..chunk.len() {
            let sep = if i == 0 { "" } else { ", " };
            sql.push_str(&format!(
                "{sep}(${}, ${}, CAST(${} AS NUMERIC))",
                3 * i + 1,
                3 * i + 2,
                3 * i + 3
            ));
        }
        let mut q = sqlx::query(&sql);
        for v in chunk {
            q = q
                .bind(v["id"].as_i64().unwrap_or_default())
                .bind(v["name"].as_str().unwrap_or_default().to_owned())
                .bind(v["amount"].as_str().unwrap_or_default().to_owned());
        }
        let mut tx = db.begin().await?;
        q.execute(&mut *tx).await?;
        tx.commit().await?;
    }
    Ok(())
}

async fn create(client: &reqwest::Client, base: &str, name: &str, config: Value) -> anyhow::Result<()> {
    let r = client
        .post(format!("{base}/v1/connectors"))
        .json(&json!({"name": name, "config": config}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "create connector {name}: {}", r.text().await?);
    Ok(())
}

async fn end_offset(client: &reqwest::Client, base: &str, topic: &str) -> anyhow::Result<u64> {
    let url = format!("{base}/v1/topics/{topic}/partitions/0/records?offset=latest&max_records=1");
    let r = client.get(url).send().await?;
    if !r.status().is_success() {
        return Ok(0);
    }
    let v: Value = r.json().await?;
    Ok(v["high_watermark"].as_u64().unwrap_or(0))
}

/// The record values of a topic's partition 0 from `offset` (at most 10 000; none at the end).
async fn topic_page(client: &reqwest::Client, base: &str, topic: &str, offset: usize) -> anyhow::Result<Vec<Value>> {
    let url = format!("{base}/v1/topics/{topic}/partitions/0/records?offset={offset}&max_records=10000");
    let mut v: Value = client.get(url).send().await?.json().await?;
    let records = match v["records"].take() {
        Value::Array(records) => records,
        _ => Vec::new(),
    };
    Ok(records.into_iter().map(|mut r| r["value"].take()).collect())
}

/// Polls `done` every 20 ms for at most ten minutes.
async fn wait<F, Fut>(mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done().await? {
        anyhow::ensure!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
