//! The JDBC source and sink through the real server, against the local PostgreSQL
//! (127.0.0.1:5432, user postgres, database test) and MariaDB (127.0.0.1:3306, root, database
//! test): every mode, the type mapping, keys, odd table names, bad input, and the end-to-end
//! case PostgreSQL → topic → MariaDB. Each test has its own tables and drops them.
mod common;

use std::time::{Duration, Instant};

use common::{Server, create_connector, send};
use serde_json::{Value, json};
use sqlx::mysql::MySqlPool;
use sqlx::postgres::PgPool;

const PG_URL: &str = "jdbc:postgresql://127.0.0.1:5432/test";
const MARIA_URL: &str = "jdbc:mariadb://127.0.0.1:3306/test";

async fn pg() -> PgPool {
    PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .expect("PostgreSQL at 127.0.0.1:5432")
}

async fn maria() -> MySqlPool {
    MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
        .await
        .expect("MariaDB at 127.0.0.1:3306")
}

/// A table name unique to this process and call.
fn table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

async fn pg_exec(db: &PgPool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn my_exec(db: &MySqlPool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Waits until the topic holds at least `n` records; returns all of them (key and value).
async fn records(s: &Server, topic: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let path = format!("/v1/topics/{topic}/partitions/0/records?offset=earliest&max_records=10000");
        let (st, v) = send(s, "GET", &path, None).await;
        let got = if st == 200 {
            v["records"].as_array().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        if got.len() >= n {
            return got;
        }
        let (_, status) = send(s, "GET", "/v1/connectors?expand=status", None).await;
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {n} records; {status}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a connector's task is FAILED; returns its trace.
async fn failed_trace(s: &Server, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = send(s, "GET", &format!("/v1/connectors/{name}/status"), None).await;
        if let Some(t) = v["tasks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["state"] == "FAILED"))
        {
            return t["trace"].as_str().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "{name} never failed: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `cond` holds (30 s at most).
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(30);
        while !$cond {
            assert!(Instant::now() < deadline, "{}", $what);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }};
}

#[tokio::test]
async fn jdbc_source_maps_postgres_types_and_keys_in_incrementing_mode() {
    let s = Server::start();
    let db = pg().await;
    let t = table("src_types");
    pg_exec(
        &db,
        &format!(
            "CREATE TABLE {t} (id SERIAL PRIMARY KEY, small SMALLINT, big BIGINT, amount NUMERIC(12,3), \
             ratio DOUBLE PRECISION, ok BOOLEAN, name TEXT, code CHAR(3), day DATE, at TIMESTAMP, \
             atz TIMESTAMPTZ, doc JSONB, raw BYTEA, gone TEXT, uid UUID);
             INSERT INTO {t} (small, big, amount, ratio, ok, name, code, day, at, atz, doc, raw, uid) VALUES
             (-2, 9007199254740993, 12345.678, 0.5, true, 'héllo', 'ab', '2026-02-03', '2026-02-03 04:05:06.789',
              '2026-02-03 04:05:06+02', '{{\"a\": [1, {{\"b\": null}}]}}', '\\x00ff10', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');"
        ),
    )
    .await;
    let name = table("c");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector", "connection.url": PG_URL,
               "connection.user": "postgres", "mode": "incrementing", "incrementing.column.name": "id",
               "table.whitelist": t, "topic.prefix": "pg-", "poll.interval.ms": "100"}),
    )
    .await;
    let topic = format!("pg-{t}");
    let got = records(&s, &topic, 1).await;
    assert_eq!(got[0]["key"], json!({"id": 1}));
    assert_eq!(
        got[0]["value"],
        json!({"id": 1, "small": -2, "big": 9007199254740993_i64, "amount": "12345.678", "ratio": 0.5, "ok": true,
               "name": "héllo", "code": "ab ", "day": "2026-02-03", "at": "2026-02-03T04:05:06.789",
               "atz": "2026-02-03T02:05:06Z", "doc": {"a": [1, {"b": null}]}, "raw": "AP8Q", "gone": null,
               "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"})
    );
    pg_exec(&db, &format!("INSERT INTO {t} (name) VALUES ('two'), ('three')")).await;
    let got = records(&s, &topic, 3).await;
    let ids: Vec<i64> = got.iter().map(|r| r["value"]["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(records(&s, &topic, 3).await.len(), 3, "rows read twice");
    let (_, offsets) = send(&s, "GET", &format!("/v1/connectors/{name}/offsets"), None).await;
    assert_eq!(offsets["offsets"][0]["offset"]["incrementing"], 3, "{offsets}");
    pg_exec(&db, &format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn jdbc_source_maps_mariadb_types_and_keys() {
    let s = Server::start();
    let db = maria().await;
    let t = table("src_types");
    my_exec(
        &db,
        &format!(
            "CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, flag TINYINT(1), u INT UNSIGNED, \
             amount DECIMAL(10,2), ratio DOUBLE, name VARCHAR(20), body TEXT, day DATE, at DATETIME(6), \
             blob_col BLOB, gone INT)"
        ),
    )
    .await;
    my_exec(
        &db,
        &format!(
            "INSERT INTO {t} (flag, u, amount, ratio, name, body, day, at, blob_col) VALUES \
             (1, 4294967295, -12.50, 1.25, 'naïve', 'long', '2026-01-02', '2026-01-02 03:04:05.000006', X'00FF10')"
        ),
    )
    .await;
    let name = table("c");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "JdbcSourceConnector", "connection.url": MARIA_URL, "connection.user": "root",
               "mode": "incrementing", "incrementing.column.name": "id", "table.whitelist": t,
               "topic.prefix": "my-", "poll.interval.ms": "100"}),
    )
    .await;
    let got = records(&s, &format!("my-{t}"), 1).await;
    assert_eq!(got[0]["key"], json!({"id": 1}));
    assert_eq!(
        got[0]["value"],
        json!({"id": 1, "flag": true, "u": 4294967295_u64, "amount": "-12.50", "ratio": 1.25, "name": "naïve",
               "body": "long", "day": "2026-01-02", "at": "2026-01-02T03:04:05.000006", "blob_col": "AP8Q",
               "gone": null})
    );
    my_exec(&db, &format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn jdbc_source_timestamp_mode_reads_groups_of_equal_timestamps_whole() {
    let s = Server::start();
    let db = pg().await;
    let t = table("src_ts");
    pg_exec(
        &db,
        &format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY, at TIMESTAMP NOT NULL);
             INSERT INTO {t} SELECT g, '2026-01-01 00:00:01' FROM generate_series(1, 7) g;
             INSERT INTO {t} VALUES (8, '2026-01-01 00:00:02'), (9, '2026-01-01 00:00:03');"
        ),
    )
    .await;
    create_connector(
        &s,
        &table("c"),
        json!({"connector.class": "JdbcSource", "connection.url": PG_URL, "mode": "timestamp",
               "timestamp.column.name": "at", "table.whitelist": t, "topic.prefix": "ts-",
               "batch.max.rows": "3", "poll.interval.ms": "100"}),
    )
    .await;
    let topic = format!("ts-{t}");
    records(&s, &topic, 9).await;
    pg_exec(
        &db,
        &format!("INSERT INTO {t} VALUES (10, '2026-01-01 00:00:04'), (11, '2026-01-01 00:00:04')"),
    )
    .await;
    records(&s, &topic, 11).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ids: Vec<i64> = records(&s, &topic, 11)
        .await
        .iter()
        .map(|r| r["value"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=11).collect::<Vec<_>>(), "no row lost, none twice");
    pg_exec(&db, &format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn jdbc_source_timestamp_incrementing_sees_updates_and_late_commits() {
    let s = Server::start();
    let db = pg().await;
    let t = table("src_tsi");
    pg_exec(
        &db,
        &format!("CREATE TABLE {t} (id SERIAL PRIMARY KEY, name TEXT, updated TIMESTAMPTZ NOT NULL DEFAULT now())"),
    )
    .await;
    create_connector(
        &s,
        &table("c"),
        json!({"connector.class": "JdbcSource", "connection.url": PG_URL, "mode": "timestamp+incrementing",
               "timestamp.column.name": "updated", "incrementing.column.name": "id", "table.whitelist": t,
               "topic.prefix": "tsi-", "timestamp.delay.interval.ms": "1500", "poll.interval.ms": "100"}),
    )
    .await;
    // A transaction takes its timestamp (now() is its start) and commits a second later,
    // after a row with a later timestamp was committed and could have been read.
    let mut late = db.begin().await.unwrap();
    sqlx::query(&format!("INSERT INTO {t} (name) VALUES ('late')"))
        .execute(&mut *late)
        .await
        .unwrap();
    pg_exec(&db, &format!("INSERT INTO {t} (name) VALUES ('early')")).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    late.commit().await.unwrap();
    let topic = format!("tsi-{t}");
    let got = records(&s, &topic, 2).await;
    let mut names: Vec<&str> = got.iter().map(|r| r["value"]["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["early", "late"]);
    pg_exec(
        &db,
        &format!("UPDATE {t} SET name = 'early, changed', updated = now() WHERE name = 'early'"),
    )
    .await;
    let got = records(&s, &topic, 3).await;
    assert_eq!(got[2]["value"]["name"], "early, changed");
    assert_eq!(got[2]["key"], json!({"id": got[2]["value"]["id"]}));
    pg_exec(&db, &format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn jdbc_source_bulk_mode_rereads_the_table_and_a_query_reads_its_rows() {
    let s = Server::start();
    let db = maria().await;
    let t = table("src_bulk");
    my_exec(&db, &format!("CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10))")).await;
    my_exec(&db, &format!("INSERT INTO {t} VALUES (1, 'a'), (2, 'b')")).await;
    create_connector(
        &s,
        &table("c"),
        json!({"connector.class": "JdbcSource", "connection.url": MARIA_URL, "mode": "bulk",
               "table.whitelist": t, "topic.prefix": "bulk-", "poll.interval.ms": "300"}),
    )
    .await;
    let got = records(&s, &format!("bulk-{t}"), 6).await;
    assert!(
        got.iter().all(|r| r["value"]["id"] == 1 || r["value"]["id"] == 2),
        "{got:?}"
    );
    let topic = table("query");
    create_connector(
        &s,
        &table("c"),
        json!({"connector.class": "JdbcSource", "connection.url": MARIA_URL, "mode": "incrementing",
               "incrementing.column.name": "id", "query": format!("SELECT id, UPPER(v) AS up FROM {t}"),
               "topic.prefix": topic, "poll.interval.ms": "100"}),
    )
    .await;
    let got = records(&s, &topic, 2).await;
    assert_eq!(got[1]["value"], json!({"id": 2, "up": "B"}));
    my_exec(&db, &format!("DROP TABLE {t}")).await;
}

/// A row is stored as the JSON text serde_json writes for its object (keys in name order, the
/// last of equal column names, escapes), with or without transforms, which see the same object.
#[tokio::test]
async fn jdbc_source_rows_are_canonical_json_with_or_without_transforms() {
    let s = Server::start();
    let db = pg().await;
    let t = table("src_text");
    pg_exec(
        &db,
        &format!(
            "CREATE TABLE {t} (id SERIAL PRIMARY KEY, name TEXT, note TEXT);
             INSERT INTO {t} (name, note) VALUES ('a \"quoted\"\ttab\\', 'first'), ('plain', NULL);"
        ),
    )
    .await;
    let query = format!("SELECT id, name, note AS dup, name AS dup, 'z' AS \"Zed\" FROM {t}");
    let base = json!({"connector.class": "JdbcSource", "connection.url": PG_URL, "mode": "incrementing",
                      "incrementing.column.name": "id", "query": query, "poll.interval.ms": "100"});
    let (plain, smt) = (table("plain"), table("smt"));
    let mut with_smt = base.clone();
    for (k, v) in [
        ("topic.prefix", smt.as_str()),
        ("transforms", "add"),
        (
            "transforms.add.type",
            "org.apache.kafka.connect.transforms.InsertField$Value",
        ),
        ("transforms.add.static.field", "via"),
        ("transforms.add.static.value", "smt"),
    ] {
        with_smt[k] = json!(v);
    }
    let mut without = base;
    without["topic.prefix"] = json!(plain);
    create_connector(&s, &table("c"), without).await;
    create_connector(&s, &table("c"), with_smt).await;
    let got = records(&s, &plain, 2).await;
    let first = json!({"Zed": "z", "dup": "a \"quoted\"\ttab\\", "id": 1, "name": "a \"quoted\"\ttab\\"});
    assert_eq!(got[0]["value"], first);
    assert_eq!(
        got[1]["value"],
        json!({"Zed": "z", "dup": "plain", "id": 2, "name": "plain"})
    );
    assert_eq!(got[0]["key"], Value::Null, "a query's rows have no key");
    let text = s
        .get_text(&format!("/v1/topics/{plain}/partitions/0/records?offset=earliest"))
        .await;
    for r in &got {
        let canonical = serde_json::to_string(&r["value"]).unwrap();
        assert!(text.contains(&canonical), "{canonical} not stored as such in {text}");
    }
    let transformed = records(&s, &smt, 2).await;
    let mut expected = first;
    expected["via"] = json!("smt");
    assert_eq!(transformed[0]["value"], expected);
    pg_exec(&db, &format!("DROP TABLE {t}")).await;
}

/// Upsert, update, delete, auto.create and auto.evolve on one database.
async fn sink_writes(url: &str, read: impl AsyncFn(&str) -> Vec<String>, drop: impl AsyncFn(&str)) {
    let s = Server::start();
    let topic = table("sink");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(
        &topic,
        json!({"records": [
            {"key": {"id": 1}, "value": {"id": 1, "name": "one", "amount": 1.5}},
            {"key": {"id": 2}, "value": {"id": 2, "name": "two", "amount": 2}},
            {"key": {"id": 1}, "value": {"id": 1, "name": "uno", "amount": 1.25}},
        ]}),
    )
    .await;
    create_connector(
        &s,
        &table("c"),
        json!({"connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector", "connection.url": url,
               "topics": topic, "insert.mode": "upsert", "pk.mode": "record_key", "pk.fields": "id",
               "auto.create": "true", "auto.evolve": "true", "delete.enabled": "true"}),
    )
    .await;
    eventually!("upserted rows", read(&topic).await == ["1|uno", "2|two"]);
    s.produce(
        &topic,
        json!({"records": [
            {"key": {"id": 3}, "value": {"id": 3, "name": "three", "extra": true}},
            {"key": {"id": 2}, "value": null},
        ]}),
    )
    .await;
    eventually!("evolved and deleted", read(&topic).await == ["1|uno", "3|three"]);
    drop(&topic).await;
}

#[tokio::test]
async fn jdbc_sink_upserts_evolves_and_deletes_in_postgres() {
    let db = pg().await;
    let read = async |t: &str| -> Vec<String> {
        let sql = format!("SELECT id::text || '|' || name FROM \"{t}\" ORDER BY id");
        sqlx::query_scalar::<_, String>(&sql)
            .fetch_all(&db)
            .await
            .unwrap_or_default()
    };
    let drop = async |t: &str| pg_exec(&db, &format!("DROP TABLE \"{t}\"")).await;
    sink_writes(PG_URL, read, drop).await;
}

#[tokio::test]
async fn jdbc_sink_upserts_evolves_and_deletes_in_mariadb() {
    let db = maria().await;
    let read = async |t: &str| -> Vec<String> {
        let sql = format!("SELECT CONCAT(id, '|', name) FROM `{t}` ORDER BY id");
        sqlx::query_scalar::<_, String>(&sql)
            .fetch_all(&db)
            .await
            .unwrap_or_default()
    };
    let drop = async |t: &str| my_exec(&db, &format!("DROP TABLE `{t}`")).await;
    sink_writes(MARIA_URL, read, drop).await;
}

#[tokio::test]
async fn jdbc_sink_update_mode_and_odd_table_names_are_quoted() {
    let s = Server::start();
    let db = pg().await;
    let victim = table("victim");
    pg_exec(&db, &format!("CREATE TABLE {victim} (id INT)")).await;
    let topic = table("odd");
    let odd = format!("a\"; DROP TABLE {victim}; --{topic}");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(
        &topic,
        json!({"records": [{"value": {"k": "x", "n": 1}}, {"value": {"k": "y", "n": 2}}]}),
    )
    .await;
    create_connector(
        &s,
        &table("c"),
        json!({"connector.class": "JdbcSink", "connection.url": PG_URL, "topics": topic,
               "table.name.format": format!("a\"; DROP TABLE {victim}; --${{topic}}"), "pk.mode": "record_value",
               "pk.fields": "k", "auto.create": "true"}),
    )
    .await;
    let quoted = odd.replace('"', "\"\"");
    let count = async || {
        sqlx::query_scalar::<_, i64>(&format!("SELECT sum(n)::bigint FROM \"{quoted}\""))
            .fetch_one(&db)
            .await
            .unwrap_or(0)
    };
    eventually!("rows in the odd table", count().await == 3);
    let exists: bool = sqlx::query_scalar(&format!("SELECT to_regclass('{victim}') IS NOT NULL"))
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(exists, "the odd name ran as SQL");
    // Update mode changes existing rows only.
    let topic2 = table("upd");
    s.create_topic(&topic2, 1, json!({})).await;
    s.produce(
        &topic2,
        json!({"records": [{"value": {"k": "x", "n": 10}}, {"value": {"k": "zz", "n": 99}}]}),
    )
    .await;
    create_connector(
        &s,
        &table("c"),
        json!({"connector.class": "JdbcSink", "connection.url": PG_URL, "topics": topic2,
               "table.name.format": odd, "insert.mode": "update", "pk.mode": "record_value", "pk.fields": "k"}),
    )
    .await;
    eventually!("updated row", count().await == 12);
    pg_exec(&db, &format!("DROP TABLE \"{quoted}\"; DROP TABLE {victim}")).await;
}

#[tokio::test]
async fn jdbc_bad_input_is_named_and_never_shows_the_password() {
    let s = Server::start();
    // Per-field validate errors.
    let (_, v) = send(
        &s,
        "PUT",
        "/v1/connector-plugins/JdbcSourceConnector/config/validate",
        Some(
            json!({"connector.class": "JdbcSourceConnector", "name": "x", "connection.url": "jdbc:oracle:thin:@h:1/x",
                    "mode": "incrementing"}),
        ),
    )
    .await;
    let errors = |v: &Value, key: &str| -> String {
        v["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["value"]["name"] == key)
            .map(|c| c["value"]["errors"].to_string())
            .unwrap_or_default()
    };
    assert!(errors(&v, "connection.url").contains("unsupported database"), "{v}");
    let (_, v) = send(
        &s,
        "PUT",
        "/v1/connector-plugins/JdbcSourceConnector/config/validate",
        Some(
            json!({"connector.class": "JdbcSourceConnector", "name": "x", "connection.url": PG_URL,
                    "mode": "incrementing", "query": "SELECT 1"}),
        ),
    )
    .await;
    assert!(errors(&v, "incrementing.column.name").contains("required"), "{v}");
    assert!(errors(&v, "topic.prefix").contains("required with query"), "{v}");
    let (_, v) = send(
        &s,
        "PUT",
        "/v1/connector-plugins/JdbcSink/config/validate",
        Some(
            json!({"connector.class": "JdbcSink", "name": "x", "connection.url": PG_URL, "topics": "t",
                    "insert.mode": "upsert", "delete.enabled": "true"}),
        ),
    )
    .await;
    assert!(errors(&v, "pk.mode").contains("needs a primary key"), "{v}");
    assert!(errors(&v, "delete.enabled").contains("record_key"), "{v}");

    // Wrong password: FAILED, with no password in the trace or the answers.
    let secret = "W3irdPassw0rd-s3cret";
    let name = table("badpw");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "JdbcSource", "connection.url": MARIA_URL, "connection.user": "root",
               "connection.password": secret, "mode": "bulk", "table.whitelist": "nothing", "topic.prefix": "x-"}),
    )
    .await;
    let trace = failed_trace(&s, &name).await;
    assert!(trace.contains("Access denied"), "{trace}");
    let (_, all) = send(&s, "GET", "/v1/connectors?expand=status&expand=info", None).await;
    assert!(!trace.contains(secret) && !all.to_string().contains(secret), "{all}");
    assert!(
        !s.logs.lock().unwrap().iter().any(|l| l.contains(secret)),
        "the password is in a log"
    );

    // Unreachable database and a missing table.
    let name = table("down");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "JdbcSource", "connection.url": "jdbc:postgresql://127.0.0.1:1/test",
               "mode": "bulk", "topic.prefix": "x-"}),
    )
    .await;
    assert!(failed_trace(&s, &name).await.contains("listing the tables"));
    let name = table("missing");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "JdbcSource", "connection.url": PG_URL, "mode": "incrementing",
               "incrementing.column.name": "id", "table.whitelist": "no_such_table_here", "topic.prefix": "x-"}),
    )
    .await;
    assert!(
        failed_trace(&s, &name)
            .await
            .contains("table 'no_such_table_here' does not exist")
    );

    // A column type that cannot be mapped: FAILED naming the column (a query can cast it).
    let pgdb = pg().await;
    let arrays = table("arrays");
    pg_exec(
        &pgdb,
        &format!("CREATE TABLE {arrays} (id INT PRIMARY KEY, tags INT[]); INSERT INTO {arrays} VALUES (1, '{{1,2}}')"),
    )
    .await;
    let name = table("arrays");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "JdbcSource", "connection.url": PG_URL, "mode": "incrementing",
               "incrementing.column.name": "id", "table.whitelist": arrays, "topic.prefix": "x-"}),
    )
    .await;
    let trace = failed_trace(&s, &name).await;
    assert!(
        trace.contains("column 'tags'") && trace.contains("cannot be mapped"),
        "{trace}"
    );
    pg_exec(&pgdb, &format!("DROP TABLE {arrays}")).await;

    // A sink whose table lacks a column (no auto.evolve): FAILED naming it.
    let db = maria().await;
    let t = table("narrow");
    my_exec(&db, &format!("CREATE TABLE {t} (id INT)")).await;
    s.create_topic(&t, 1, json!({})).await;
    s.produce(&t, json!({"records": [{"value": {"id": 1, "wide": "x"}}]}))
        .await;
    let name = table("narrow");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "JdbcSink", "connection.url": MARIA_URL, "topics": t}),
    )
    .await;
    let trace = failed_trace(&s, &name).await;
    assert!(trace.contains("has no column wide"), "{trace}");
    my_exec(&db, &format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn jdbc_end_to_end_postgres_table_to_mariadb_table() {
    let s = Server::start();
    let pgdb = pg().await;
    let mydb = maria().await;
    let t = table("legacy");
    pg_exec(
        &pgdb,
        &format!(
            "CREATE TABLE {t} (id SERIAL PRIMARY KEY, name TEXT NOT NULL, price NUMERIC(10,2), \
             updated TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'));
             INSERT INTO {t} (name, price) VALUES ('apple', 1.20), ('pear', 2.50), ('plum', 0.99);"
        ),
    )
    .await;
    create_connector(
        &s,
        &table("src"),
        json!({"connector.class": "JdbcSourceConnector", "connection.url": PG_URL, "mode": "timestamp+incrementing",
               "timestamp.column.name": "updated", "incrementing.column.name": "id", "table.whitelist": t,
               "topic.prefix": "legacy-", "poll.interval.ms": "100"}),
    )
    .await;
    let topic = format!("legacy-{t}");
    let copy = format!("copy_{topic}");
    my_exec(
        &mydb,
        &format!(
            "CREATE TABLE `{copy}` (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(10,2), updated DATETIME(6))"
        ),
    )
    .await;
    create_connector(
        &s,
        &table("snk"),
        json!({"connector.class": "JdbcSinkConnector", "connection.url": MARIA_URL, "topics": topic,
               "table.name.format": "copy_${topic}", "insert.mode": "upsert", "pk.mode": "record_key",
               "delete.enabled": "true", "errors.retry.timeout": "30000"}),
    )
    .await;
    let read = async || -> Vec<String> {
        let sql = format!("SELECT CONCAT(id, '|', name, '|', price) FROM `{copy}` ORDER BY id");
        sqlx::query_scalar::<_, String>(&sql)
            .fetch_all(&mydb)
            .await
            .unwrap_or_default()
    };
    eventually!(
        "inserted rows copied",
        read().await == ["1|apple|1.20", "2|pear|2.50", "3|plum|0.99"]
    );
    pg_exec(
        &pgdb,
        &format!("UPDATE {t} SET price = 1.35, updated = now() AT TIME ZONE 'UTC' WHERE name = 'apple'"),
    )
    .await;
    pg_exec(&pgdb, &format!("INSERT INTO {t} (name, price) VALUES ('fig', 3.00)")).await;
    // The query-based source cannot see deletes: a tombstone for the key stands for one.
    pg_exec(&pgdb, &format!("DELETE FROM {t} WHERE name = 'pear'")).await;
    s.produce(&topic, json!({"records": [{"key": {"id": 2}, "value": null}]}))
        .await;
    eventually!(
        "updated, inserted and deleted",
        read().await == ["1|apple|1.35", "3|plum|0.99", "4|fig|3.00"]
    );
    let sql = format!("SELECT CAST(updated AS CHAR) FROM `{copy}` WHERE id = 1");
    let copied: String = sqlx::query_scalar(&sql).fetch_one(&mydb).await.unwrap();
    let sql = format!("SELECT to_char(updated, 'YYYY-MM-DD HH24:MI:SS.US') FROM {t} WHERE id = 1");
    let original: String = sqlx::query_scalar(&sql).fetch_one(&pgdb).await.unwrap();
    assert_eq!(copied, original, "the timestamp arrived as the same date-time");
    pg_exec(&pgdb, &format!("DROP TABLE {t}")).await;
    my_exec(&mydb, &format!("DROP TABLE `{copy}`")).await;
}

/// Rewinds a stopped sink's group to the start of its topic and resumes it.
async fn rewind(s: &Server, name: &str, topic: &str) {
    let (st, _) = send(s, "PUT", &format!("/v1/connectors/{name}/stop"), None).await;
    assert_eq!(st, 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = send(s, "GET", &format!("/v1/connectors/{name}/status"), None).await;
        if v["connector"]["state"] == "STOPPED" {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let offsets = json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0},
                                      "offset": {"kafka_offset": 0}}]});
    let (st, v) = send(s, "PATCH", &format!("/v1/connectors/{name}/offsets"), Some(offsets)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        send(s, "PUT", &format!("/v1/connectors/{name}/resume"), None).await.0,
        202
    );
}

#[tokio::test]
async fn jdbc_sink_exactly_once_skips_what_the_database_already_has() {
    let s = Server::start();
    let db = pg().await;
    let mut counts = Vec::new();
    for exactly_once in [true, false] {
        let topic = table("eos");
        s.create_topic(&topic, 1, json!({})).await;
        let batch: Vec<Value> = (0..10).map(|n| json!({"value": {"n": n}})).collect();
        s.produce(&topic, json!({"records": batch})).await;
        let name = table("c");
        create_connector(
            &s,
            &name,
            json!({"connector.class": "JdbcSink", "connection.url": PG_URL, "topics": topic, "auto.create": "true",
                   "exactly.once": exactly_once.to_string(), "exactly.once.offsets.table": format!("{topic}_offsets")}),
        )
        .await;
        let count = async || -> (i64, i64) {
            let sql = format!("SELECT count(*), count(DISTINCT n) FROM \"{topic}\"");
            sqlx::query_as(&sql).fetch_one(&db).await.unwrap_or((0, 0))
        };
        eventually!("first rows", count().await == (10, 10));
        // As after a crash between the database's commit and the group's: the group is behind.
        rewind(&s, &name, &topic).await;
        let more: Vec<Value> = (10..15).map(|n| json!({"value": {"n": n}})).collect();
        s.produce(&topic, json!({"records": more})).await;
        eventually!("later rows", count().await.1 == 15);
        tokio::time::sleep(Duration::from_millis(500)).await;
        counts.push(count().await);
        pg_exec(
            &db,
            &format!("DROP TABLE \"{topic}\"; DROP TABLE IF EXISTS \"{topic}_offsets\""),
        )
        .await;
    }
    assert_eq!(counts[0], (15, 15), "exactly once: nothing written twice");
    assert_eq!(
        counts[1],
        (25, 15),
        "at-least-once: the rewound records are written again"
    );
}

#[tokio::test]
async fn jdbc_source_tasks_split_the_tables() {
    let s = Server::start();
    let db = pg().await;
    let (a, b) = (table("split_a"), table("split_b"));
    for t in [&a, &b] {
        pg_exec(
            &db,
            &format!("CREATE TABLE {t} (id INT PRIMARY KEY); INSERT INTO {t} VALUES (1), (2)"),
        )
        .await;
    }
    let name = table("c");
    create_connector(
        &s,
        &name,
        json!({"connector.class": "JdbcSource", "connection.url": PG_URL, "mode": "incrementing",
               "incrementing.column.name": "id", "table.whitelist": format!("{a},{b}"), "topic.prefix": "split-",
               "tasks.max": "4", "poll.interval.ms": "100"}),
    )
    .await;
    for t in [&a, &b] {
        records(&s, &format!("split-{t}"), 2).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for t in [&a, &b] {
        assert_eq!(
            records(&s, &format!("split-{t}"), 2).await.len(),
            2,
            "a table read by two tasks"
        );
    }
    let (_, tasks) = send(&s, "GET", &format!("/v1/connectors/{name}/tasks"), None).await;
    assert_eq!(tasks.as_array().map(Vec::len), Some(2), "one task per table: {tasks}");
    pg_exec(&db, &format!("DROP TABLE {a}; DROP TABLE {b}")).await;
}

#[tokio::test]
async fn jdbc_sink_dead_letters_records_that_cannot_be_rows() {
    let s = Server::start();
    let db = maria().await;
    let topic = table("dlq_src");
    let dlq = table("dlq");
    s.create_topic(&topic, 1, json!({})).await;
    s.produce(
        &topic,
        json!({"records": [{"value": {"n": 1}}, {"value": "not an object"}, {"value": {"n": 3}}]}),
    )
    .await;
    create_connector(
        &s,
        &table("c"),
        json!({"connector.class": "JdbcSink", "connection.url": MARIA_URL, "topics": topic, "auto.create": "true",
               "errors.tolerance": "all", "errors.deadletterqueue.topic.name": dlq,
               "errors.deadletterqueue.context.headers.enable": "true"}),
    )
    .await;
    let letters = records(&s, &dlq, 1).await;
    assert_eq!(letters[0]["value"], "not an object");
    let message = letters[0]["headers"]["__connect.errors.exception.message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("not a JSON object"), "{letters:?}");
    let sql = format!("SELECT CAST(n AS SIGNED) FROM `{topic}` ORDER BY n");
    let rows = async || {
        sqlx::query_scalar::<_, i64>(&sql)
            .fetch_all(&db)
            .await
            .unwrap_or_default()
    };
    eventually!("the good rows written", rows().await == [1, 3]);
    my_exec(&db, &format!("DROP TABLE `{topic}`")).await;
}

/// Plain inserts into PostgreSQL go in by `COPY`, other modes by a JSON statement: the same
/// records written both ways into tables of every type COPY takes read back the same, escapes
/// (tab, line break, backslash), nulls and JSON included.
#[tokio::test]
async fn jdbc_sink_copy_reads_values_as_the_json_statement_does() {
    let s = Server::start();
    let db = pg().await;
    let topic = table("copy");
    s.create_topic(&topic, 1, json!({})).await;
    let values = [
        json!({"id": 1, "name": "tab\there\nnew line \\ back\\slash \\N", "doc": {"a": [1, "x\ty"]}, "ok": true,
               "at": "2026-01-02T03:04:05.5", "amount": 12.5, "big": 9007199254740993u64, "tag": "s"}),
        json!({"id": 2, "name": null, "doc": "a JSON string", "ok": false, "at": null, "amount": "7.25", "big": -1,
               "tag": null}),
        json!({"id": 3, "name": "only some columns"}),
    ];
    let batch: Vec<Value> = values
        .iter()
        .map(|v| json!({"key": {"id": v["id"]}, "value": v}))
        .collect();
    s.produce(&topic, json!({"records": batch})).await;
    let mut tables = Vec::new();
    for mode in ["insert", "upsert"] {
        let t = format!("{topic}_{mode}");
        pg_exec(
            &db,
            &format!(
                "CREATE TABLE \"{t}\" (id bigint PRIMARY KEY, name text, doc jsonb, ok boolean, at timestamp, \
                 amount numeric(10,2), big numeric, tag varchar(8))"
            ),
        )
        .await;
        create_connector(
            &s,
            &table("c"),
            json!({"connector.class": "JdbcSink", "connection.url": PG_URL, "topics": topic,
                   "table.name.format": t, "insert.mode": mode, "pk.mode": "record_key", "pk.fields": "id"}),
        )
        .await;
        tables.push(t);
    }
    let read = async |t: &str| -> Vec<String> {
        let sql = format!("SELECT row_to_json(x)::text FROM \"{t}\" x ORDER BY id");
        sqlx::query_scalar(&sql).fetch_all(&db).await.unwrap_or_default()
    };
    eventually!("rows by COPY", read(&tables[0]).await.len() == 3);
    eventually!("rows by the JSON statement", read(&tables[1]).await.len() == 3);
    let copied = read(&tables[0]).await;
    assert_eq!(copied, read(&tables[1]).await);
    let first: Value = serde_json::from_str(&copied[0]).unwrap();
    assert_eq!(first["name"], "tab\there\nnew line \\ back\\slash \\N");
    assert_eq!(first["doc"], json!({"a": [1, "x\ty"]}));
    assert_eq!(first["big"], json!(9007199254740993u64));
    let second: Value = serde_json::from_str(&copied[1]).unwrap();
    assert_eq!(
        (&second["name"], &second["doc"]),
        (&Value::Null, &json!("a JSON string"))
    );
    for t in tables {
        pg_exec(&db, &format!("DROP TABLE \"{t}\"")).await;
    }
}
