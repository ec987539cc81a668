//! PostgreSQL change data capture through the real server, against a PostgreSQL each test starts
//! for itself with `wal_level=logical` (the shared one runs with `wal_level=replica`): snapshot
//! (consistent with the slot's start, resumed after `kill -9`, `initial_only`), inserts, updates and
//! deletes in Debezium's envelope with tombstones, REPLICA IDENTITY FULL and key changes, restart
//! and `kill -9` of Weir and a restart of PostgreSQL without loss or duplicate, heartbeats that
//! advance an idle slot, `ExtractNewRecordState` on the connector, and the bad inputs (unreachable
//! server, `wal_level` not logical, missing table or publication, bad names, hidden password).
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, create_connector, send, unique};
use serde_json::{Value, json};

/// A PostgreSQL of its own in a temporary directory, stopped when dropped.
struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

fn bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("an initdb")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{tool} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Pg {
    fn start() -> Self {
        let bin = bindir();
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chown").arg("postgres:").arg(dir.path()).status().unwrap();
        assert!(status.success(), "chown");
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap();
        as_postgres(
            &bin,
            "initdb",
            &["-D", data_s, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let port = free_port();
        let opts = format!(
            "-c wal_level=logical -p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_wal_senders=10",
            dir.path().display()
        );
        let log = dir.path().join("log");
        as_postgres(
            &bin,
            "pg_ctl",
            &[
                "-D",
                data_s,
                "-w",
                "-t",
                "60",
                "-l",
                log.to_str().unwrap(),
                "-o",
                &opts,
                "start",
            ],
        );
        Self { dir, bin, port }
    }

    /// Restarts the server (fast shutdown: sessions, the walsender too, are ended).
    fn restart(&self) {
        let data = self.dir.path().join("data");
        // With a log file: a server started without one keeps pg_ctl's output open.
        let log = self.dir.path().join("log");
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-l",
                log.to_str().unwrap(),
                "restart",
            ],
        );
    }

    /// A psql session kept open (to hold a lock or a transaction).
    fn session(&self) -> Session {
        let child = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-q",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("psql");
        Session { child }
    }

    /// Runs SQL with psql and returns its unaligned output.
    fn sql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A connector config for this server.
    fn config(&self, prefix: &str, slot: &str, extra: Value) -> Value {
        let mut c = json!({
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.port": self.port.to_string(),
            "database.user": "postgres",
            "database.password": "not-used-with-trust",
            "database.dbname": "postgres",
            "topic.prefix": prefix,
            "slot.name": slot,
            "publication.name": format!("{slot}_pub"),
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }
}

/// An open psql session.
struct Session {
    child: std::process::Child,
}

impl Session {
    /// Sends SQL and waits a moment for it to run.
    fn run(&mut self, sql: &str) {
        use std::io::Write as _;
        let stdin = self.child.stdin.as_mut().expect("psql stdin");
        writeln!(stdin, "{sql}").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Every record (key and value) of a topic's partition 0, from the start (page by page: a
/// fetch answers a limited number of bytes).
async fn records(s: &Server, topic: &str) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    loop {
        let path = format!(
            "/v1/topics/{topic}/partitions/0/records?offset={}&max_records=10000",
            out.len()
        );
        let (st, v) = send(s, "GET", &path, None).await;
        let page = v["records"].as_array().cloned().unwrap_or_default();
        if st != 200 || page.is_empty() {
            return out;
        }
        out.extend(page.iter().map(|r| (r["key"].clone(), r["value"].clone())));
    }
}

/// Waits until a topic holds at least `n` records.
async fn wait_records(s: &Server, topic: &str, n: usize, secs: u64) -> Vec<(Value, Value)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = records(s, topic).await;
        if r.len() >= n {
            return r;
        }
        if Instant::now() > deadline {
            let (_, status) = send(s, "GET", "/v1/connectors?expand=status", None).await;
            panic!("{topic}: only {} of {n} records; connectors: {status}", r.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the connector's task to fail and returns its trace.
async fn failed_trace(s: &Server, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = send(s, "GET", &format!("/v1/connectors/{name}/status"), None).await;
        if v["tasks"][0]["state"] == "FAILED" {
            return v["tasks"][0]["trace"].as_str().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "{name} did not fail: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ops(records: &[(Value, Value)]) -> Vec<String> {
    records
        .iter()
        .map(|(_, v)| v["op"].as_str().map_or("tombstone".to_owned(), str::to_owned))
        .collect()
}

#[tokio::test]
async fn snapshot_then_inserts_updates_and_deletes_in_debeziums_envelope() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE public.items (id int PRIMARY KEY, name text, price numeric(10,2), tags jsonb, ok boolean)");
    pg.sql("INSERT INTO items VALUES (1, 'one', 1.50, '{\"a\": 1}', true), (2, 'two', 2.00, NULL, false)");
    pg.sql("CREATE TABLE public.ignored (id int PRIMARY KEY)");
    let s = Server::start();
    let prefix = unique("pg").replace('-', "_");
    let config = pg.config(&prefix, "cdc_basic", json!({"table.include.list": "public\\.items"}));
    create_connector(&s, "cdc-basic", config).await;
    let topic = format!("{prefix}.public.items");
    let snap = wait_records(&s, &topic, 2, 60).await;
    assert_eq!(ops(&snap), ["r", "r"]);
    assert_eq!(snap[0].0, json!({"id": 1}));
    let v = &snap[0].1;
    assert_eq!(v["before"], Value::Null);
    assert_eq!(
        v["after"],
        json!({"id": 1, "name": "one", "price": "1.50", "tags": {"a": 1}, "ok": true})
    );
    assert_eq!(v["source"]["table"], "items");
    assert_eq!(v["source"]["schema"], "public");
    assert_eq!(v["source"]["snapshot"], "true");
    assert!(v["source"]["lsn"].as_u64().unwrap() > 0, "{v}");
    assert!(v["ts_ms"].as_i64().unwrap() > 0);

    pg.sql("INSERT INTO items VALUES (3, 'three', 3, NULL, NULL)");
    pg.sql("UPDATE items SET name = 'uno' WHERE id = 1");
    pg.sql("DELETE FROM items WHERE id = 2");
    pg.sql("INSERT INTO ignored VALUES (1)");
    let all = wait_records(&s, &topic, 6, 30).await;
    assert_eq!(ops(&all), ["r", "r", "c", "u", "d", "tombstone"]);
    let created = &all[2];
    assert_eq!(created.0, json!({"id": 3}));
    assert_eq!(created.1["after"]["name"], "three");
    assert_eq!(created.1["source"]["snapshot"], "false");
    assert!(created.1["source"]["txId"].as_u64().is_some(), "{}", created.1);
    let updated = &all[3];
    assert_eq!((updated.1["op"].as_str(), &updated.0), (Some("u"), &json!({"id": 1})));
    assert_eq!(updated.1["after"]["name"], "uno");
    let deleted = &all[4];
    assert_eq!((deleted.1["op"].as_str(), &deleted.0), (Some("d"), &json!({"id": 2})));
    assert_eq!(deleted.1["before"]["id"], 2);
    assert_eq!(deleted.1["after"], Value::Null);
    assert_eq!(
        all[5],
        (json!({"id": 2}), Value::Null),
        "a tombstone follows the delete"
    );
    assert!(
        all[3].1["source"]["lsn"].as_u64() > all[2].1["source"]["lsn"].as_u64(),
        "LSNs grow"
    );
    // The table outside table.include.list has no topic.
    assert!(records(&s, &format!("{prefix}.public.ignored")).await.is_empty());
}

#[tokio::test]
async fn replica_identity_full_gives_the_whole_old_row_and_key_changes_are_delete_then_create() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE full_rows (id int PRIMARY KEY, name text)");
    pg.sql("ALTER TABLE full_rows REPLICA IDENTITY FULL");
    let s = Server::start();
    let prefix = unique("pgf").replace('-', "_");
    create_connector(
        &s,
        "cdc-full",
        pg.config(&prefix, "cdc_full", json!({"snapshot.mode": "never"})),
    )
    .await;
    let topic = format!("{prefix}.public.full_rows");
    // The slot exists once the task streams: wait for it before changing rows.
    wait_slot(&pg, "cdc_full").await;
    pg.sql("INSERT INTO full_rows VALUES (1, 'a')");
    pg.sql("UPDATE full_rows SET name = 'b' WHERE id = 1");
    pg.sql("UPDATE full_rows SET id = 2 WHERE id = 1");
    let all = wait_records(&s, &topic, 5, 30).await;
    assert_eq!(ops(&all), ["c", "u", "d", "tombstone", "c"]);
    assert_eq!(all[1].1["before"], json!({"id": 1, "name": "a"}));
    assert_eq!(all[2].0, json!({"id": 1}));
    assert_eq!(all[4].0, json!({"id": 2}));
    assert_eq!(all[4].1["after"], json!({"id": 2, "name": "b"}));
}

async fn wait_slot(pg: &Pg, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.sql(&format!(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
    )) != "1"
    {
        assert!(Instant::now() < deadline, "slot {slot} never became active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ids of the create/read events of a topic, asserting none appears twice.
fn unique_ids(records: &[(Value, Value)]) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    for (_, v) in records {
        if let Some(id) = v["after"]["id"].as_i64() {
            let seq: Vec<String> = records
                .iter()
                .map(|(_, v)| format!("{}{}", v["op"].as_str().unwrap_or("-"), v["after"]["id"]))
                .collect();
            assert!(ids.insert(id), "id {id} written twice: {seq:?}");
        }
    }
    ids
}

#[tokio::test]
async fn restart_and_kill_9_of_weir_resume_without_loss_or_duplicate() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE events (id int PRIMARY KEY, n int)");
    pg.sql("INSERT INTO events SELECT g, g FROM generate_series(1, 100) g");
    let mut s = Server::start();
    let prefix = unique("pgk").replace('-', "_");
    create_connector(
        &s,
        "cdc-kill",
        pg.config(&prefix, "cdc_kill", json!({"snapshot.fetch.size": "7"})),
    )
    .await;
    let topic = format!("{prefix}.public.events");
    wait_records(&s, &topic, 100, 60).await;
    for i in 101..=150 {
        pg.sql(&format!("INSERT INTO events VALUES ({i}, {i})"));
    }
    wait_records(&s, &topic, 120, 30).await;
    s.kill9();
    for i in 151..=200 {
        pg.sql(&format!("INSERT INTO events VALUES ({i}, {i})"));
    }
    s.restart();
    let all = wait_records(&s, &topic, 200, 60).await;
    s.stop();
    pg.sql("INSERT INTO events SELECT g, g FROM generate_series(201, 250) g");
    s.restart();
    let all2 = wait_records(&s, &topic, 250, 60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let final_records = records(&s, &topic).await;
    let ids = unique_ids(&final_records);
    assert_eq!(final_records.len(), 250, "no duplicate after the restarts");
    assert!(all.len() >= 200 && all2.len() >= 250);
    assert_eq!(ids, (1..=250).collect::<BTreeSet<i64>>());
    // The slot has confirmed what was written: nothing older is kept for it.
    let confirmed = pg.sql("SELECT confirmed_flush_lsn > '0/0' FROM pg_replication_slots WHERE slot_name = 'cdc_kill'");
    assert_eq!(confirmed, "t");
}

#[tokio::test]
async fn an_interrupted_snapshot_resumes_where_it_stopped() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE a_first (id int PRIMARY KEY)");
    pg.sql("INSERT INTO a_first SELECT generate_series(1, 200)");
    pg.sql("CREATE TABLE big (id int PRIMARY KEY, pad text)");
    pg.sql("INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 3000) g");
    // The slot exists already (no exported snapshot to wait for), and a session holds `big`
    // locked: the snapshot reads a_first, then waits on big until the kill.
    pg.sql("SELECT pg_create_logical_replication_slot('cdc_snap', 'pgoutput')");
    let mut lock = pg.session();
    lock.run("BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE;");
    let mut s = Server::start();
    let prefix = unique("pgs").replace('-', "_");
    create_connector(
        &s,
        "cdc-snap",
        pg.config(&prefix, "cdc_snap", json!({"snapshot.fetch.size": "50"})),
    )
    .await;
    let first = format!("{prefix}.public.a_first");
    let topic = format!("{prefix}.public.big");
    wait_records(&s, &first, 200, 60).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        records(&s, &topic).await.is_empty(),
        "the lock holds the snapshot before big"
    );
    s.kill9();
    lock.run("COMMIT;");
    drop(lock);
    s.restart();
    wait_records(&s, &topic, 3000, 120).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = records(&s, &topic).await;
    assert_eq!(all.len(), 3000, "each row read exactly once");
    assert_eq!(unique_ids(&all), (1..=3000).collect::<BTreeSet<i64>>());
    assert!(ops(&all).iter().all(|o| o == "r"));
    let first = records(&s, &first).await;
    assert_eq!(
        first.len(),
        200,
        "the snapshot resumed after a_first's last row, not from scratch"
    );
}

/// Waits until the slot has confirmed the WAL position of now (30 s at most).
async fn wait_slot_past_now(pg: &Pg, slot: &str) {
    let start = pg.sql(&format!(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ));
    let target = pg.sql("SELECT pg_current_wal_lsn()");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let advanced = pg.sql(&format!(
            "SELECT confirmed_flush_lsn >= '{target}' FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ));
        if advanced == "t" {
            return;
        }
        assert!(Instant::now() < deadline, "the slot stayed at {start}, below {target}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn heartbeats_advance_the_slot_while_captured_tables_are_idle() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE quiet (id int PRIMARY KEY)");
    pg.sql("CREATE TABLE busy (id int PRIMARY KEY)");
    let s = Server::start();
    let prefix = unique("pgh").replace('-', "_");
    let config = pg.config(
        &prefix,
        "cdc_hb",
        json!({"table.include.list": "public\\.quiet", "publication.autocreate.mode": "filtered",
               "heartbeat.interval.ms": "200", "snapshot.mode": "never"}),
    );
    create_connector(&s, "cdc-hb", config).await;
    wait_slot(&pg, "cdc_hb").await;
    // WAL that the publication does not carry.
    pg.sql("INSERT INTO busy SELECT generate_series(1, 1000)");
    wait_slot_past_now(&pg, "cdc_hb").await;
    assert!(records(&s, &format!("{prefix}.public.quiet")).await.is_empty());
    assert!(records(&s, &format!("{prefix}.public.busy")).await.is_empty());
}

/// With a publication of all tables, changes of tables outside `table.include.list` arrive
/// and are dropped; their transactions' positions are still written, so the slot keeps up
/// without waiting for a change of an included table.
#[tokio::test]
async fn transactions_without_a_captured_change_still_advance_the_slot() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE kept (id int PRIMARY KEY)");
    pg.sql("CREATE TABLE other (id int PRIMARY KEY)");
    let s = Server::start();
    let prefix = unique("pgo").replace('-', "_");
    let config = pg.config(
        &prefix,
        "cdc_other",
        json!({"table.include.list": "public\\.kept", "publication.autocreate.mode": "all_tables",
               "heartbeat.interval.ms": "200", "snapshot.mode": "never"}),
    );
    create_connector(&s, "cdc-other", config).await;
    wait_slot(&pg, "cdc_other").await;
    pg.sql("INSERT INTO other SELECT generate_series(1, 100)");
    wait_slot_past_now(&pg, "cdc_other").await;
    assert!(records(&s, &format!("{prefix}.public.other")).await.is_empty());
    // And a captured change after them still arrives.
    pg.sql("INSERT INTO kept VALUES (1)");
    assert_eq!(wait_records(&s, &format!("{prefix}.public.kept"), 1, 30).await.len(), 1);
}

#[tokio::test]
async fn bad_inputs_fail_clearly_and_never_show_the_password() {
    let s = Server::start();
    // Unreachable server.
    let port = free_port();
    let config = json!({
        "connector.class": "PostgresConnector", "database.hostname": "127.0.0.1",
        "database.port": port.to_string(), "database.user": "postgres",
        "database.password": "hunter2-secret", "database.dbname": "postgres", "topic.prefix": "unreach",
    });
    create_connector(&s, "cdc-unreachable", config).await;
    let trace = failed_trace(&s, "cdc-unreachable").await;
    assert!(trace.contains(&format!("127.0.0.1:{port}")), "{trace}");
    assert!(!trace.contains("hunter2"), "{trace}");
    let (_, shown) = send(&s, "GET", "/v1/connectors/cdc-unreachable", None).await;
    assert_eq!(shown["config"]["database.password"], "[hidden]", "{shown}");
    assert!(!s.logs.lock().unwrap().iter().any(|l| l.contains("hunter2")));

    // The shared PostgreSQL runs with wal_level=replica.
    let config = json!({
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1", "database.port": "5432", "database.user": "postgres",
        "database.dbname": "postgres", "topic.prefix": "replica", "slot.name": "weir_never_created",
    });
    create_connector(&s, "cdc-replica", config).await;
    let trace = failed_trace(&s, "cdc-replica").await;
    assert!(trace.contains("wal_level") && trace.contains("logical"), "{trace}");

    // A table that does not exist.
    let pg = Pg::start();
    let config = pg.config("missing", "cdc_missing", json!({"table.include.list": "public\\.nope"}));
    create_connector(&s, "cdc-missing", config).await;
    let trace = failed_trace(&s, "cdc-missing").await;
    assert!(
        trace.contains("table.include.list") && trace.contains("no table"),
        "{trace}"
    );

    // Names checked before anything runs.
    let mut bad = pg.config("bad prefix", "Bad-Slot", json!({"snapshot.mode": "sometimes"}));
    bad["name"] = json!("cdc-bad");
    let (st, v) = send(
        &s,
        "PUT",
        "/v1/connector-plugins/PostgresConnector/config/validate",
        Some(bad),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let errors = |key: &str| -> Vec<Value> {
        v["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["value"]["name"] == key)
            .map(|c| c["value"]["errors"].as_array().unwrap().clone())
            .unwrap_or_default()
    };
    assert!(!errors("slot.name").is_empty(), "{v}");
    assert!(!errors("topic.prefix").is_empty(), "{v}");
    assert!(!errors("snapshot.mode").is_empty(), "{v}");
    assert!(errors("database.hostname").is_empty(), "{v}");
}

#[tokio::test]
async fn extract_new_record_state_gives_plain_rows_and_changes_of_dropped_tables_still_arrive() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE plain (id int PRIMARY KEY, name text)");
    pg.sql("CREATE TABLE doomed (id int PRIMARY KEY, name text)");
    let s = Server::start();
    let prefix = unique("pgu").replace('-', "_");
    let config = pg.config(
        &prefix,
        "cdc_unwrap",
        json!({"snapshot.mode": "never", "transforms": "unwrap",
               "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
               "transforms.unwrap.add.fields": "op,table"}),
    );
    create_connector(&s, "cdc-unwrap", config).await;
    wait_slot(&pg, "cdc_unwrap").await;
    // Stopped, the connector does not read the slot: the changes of `doomed` are read after the
    // table is gone from the catalog.
    let (st, v) = send(&s, "PUT", "/v1/connectors/cdc-unwrap/stop", None).await;
    assert!(st == 202 || st == 204 || st == 200, "{st} {v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pg.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc_unwrap' AND active") != "0" {
        assert!(Instant::now() < deadline, "the slot stayed active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.sql("INSERT INTO plain VALUES (1, 'a')");
    pg.sql("UPDATE plain SET name = 'b' WHERE id = 1");
    pg.sql("DELETE FROM plain WHERE id = 1");
    pg.sql("INSERT INTO doomed VALUES (7, 'x')");
    pg.sql("DROP TABLE doomed");
    let (st, v) = send(&s, "PUT", "/v1/connectors/cdc-unwrap/resume", None).await;
    assert!(st == 202 || st == 204 || st == 200, "{st} {v}");
    let plain = wait_records(&s, &format!("{prefix}.public.plain"), 3, 30).await;
    assert_eq!(
        plain,
        [
            (
                json!({"id": 1}),
                json!({"id": 1, "name": "a", "__op": "c", "__table": "plain"})
            ),
            (
                json!({"id": 1}),
                json!({"id": 1, "name": "b", "__op": "u", "__table": "plain"})
            ),
            (json!({"id": 1}), Value::Null),
        ]
    );
    let doomed = wait_records(&s, &format!("{prefix}.public.doomed"), 1, 30).await;
    assert_eq!(doomed[0].0, json!({"id": 7}), "the key from the replica identity");
    assert_eq!(doomed[0].1["name"], "x");
}

#[tokio::test]
async fn the_initial_snapshot_is_the_database_as_of_the_slots_start() {
    let pg = Pg::start();
    // Read first, one row per page, and each page at least 100 ms: `a_first`'s key is a domain
    // whose check sleeps once `knob` says so, and every page after the first casts the last key
    // read to that domain. The snapshot reaches `stock` at least 30 s after it starts, however
    // fast or loaded the machine is, and stock's rows change well before that.
    pg.sql("CREATE TABLE knob (slow bool)");
    pg.sql("INSERT INTO knob VALUES (false)");
    pg.sql(
        "CREATE FUNCTION pause_when_slow(int) RETURNS bool LANGUAGE sql AS \
         'SELECT CASE WHEN (SELECT slow FROM knob) THEN pg_sleep(0.1) IS NOT NULL ELSE true END'",
    );
    pg.sql("CREATE DOMAIN slow_int AS int CHECK (pause_when_slow(VALUE))");
    pg.sql("CREATE TABLE a_first (id slow_int PRIMARY KEY)");
    pg.sql("INSERT INTO a_first SELECT generate_series(1, 300)");
    pg.sql("UPDATE knob SET slow = true");
    pg.sql("CREATE TABLE stock (id int PRIMARY KEY, qty int)");
    pg.sql("INSERT INTO stock SELECT g, 0 FROM generate_series(1, 300) g");
    let s = Server::start();
    let prefix = unique("pgc").replace('-', "_");
    create_connector(
        &s,
        "cdc-consistent",
        pg.config(&prefix, "cdc_consistent", json!({"snapshot.fetch.size": "1"})),
    )
    .await;
    let first = format!("{prefix}.public.a_first");
    let topic = format!("{prefix}.public.stock");
    // The slot is created and consistent (its snapshot exported): the snapshot now reads a_first
    // one row per fetch, and stock's rows change before it gets there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg.sql(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc_consistent' AND confirmed_flush_lsn IS NOT NULL",
    ) != "1"
    {
        assert!(Instant::now() < deadline, "the slot was never created");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg.sql("UPDATE stock SET qty = 1 WHERE id > 200");
    let read_before = records(&s, &first).await.len();
    assert!(read_before < 300, "the snapshot reached stock before the update");
    let all = wait_records(&s, &topic, 400, 180).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = if all.len() == 400 {
        records(&s, &topic).await
    } else {
        all
    };
    assert_eq!(all.len(), 400, "300 snapshot rows, then 100 updates");
    let (snapshot, changes) = all.split_at(300);
    assert!(
        snapshot.iter().all(|(_, v)| v["op"] == "r" && v["after"]["qty"] == 0),
        "the snapshot shows the rows as of the slot's start"
    );
    assert!(changes.iter().all(|(_, v)| v["op"] == "u" && v["after"]["qty"] == 1));
    let updated: BTreeSet<i64> = changes.iter().map(|(k, _)| k["id"].as_i64().unwrap()).collect();
    assert_eq!(updated, (201..=300).collect());
}

#[tokio::test]
async fn a_restarted_postgres_is_streamed_from_again_without_loss() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE ticks (id int PRIMARY KEY)");
    let s = Server::start();
    let prefix = unique("pgr").replace('-', "_");
    let config = pg.config(
        &prefix,
        "cdc_pgrestart",
        json!({"snapshot.mode": "never", "errors.retry.timeout": "60000"}),
    );
    create_connector(&s, "cdc-pgrestart", config).await;
    wait_slot(&pg, "cdc_pgrestart").await;
    pg.sql("INSERT INTO ticks VALUES (1)");
    let topic = format!("{prefix}.public.ticks");
    wait_records(&s, &topic, 1, 30).await;
    pg.restart();
    pg.sql("INSERT INTO ticks VALUES (2)");
    wait_records(&s, &topic, 2, 60).await;
    pg.sql("INSERT INTO ticks VALUES (3)");
    let all = wait_records(&s, &topic, 3, 60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = if all.len() == 3 { records(&s, &topic).await } else { all };
    assert_eq!(unique_ids(&all), (1..=3).collect::<BTreeSet<i64>>());
    assert_eq!(all.len(), 3, "no duplicate");
    let (_, status) = send(&s, "GET", "/v1/connectors/cdc-pgrestart/status", None).await;
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{status}");
}

#[tokio::test]
async fn initial_only_snapshots_without_a_slot_and_a_missing_publication_is_named() {
    let pg = Pg::start();
    pg.sql("CREATE TABLE once (id int PRIMARY KEY, v text)");
    pg.sql("INSERT INTO once VALUES (1, 'a'), (2, 'b')");
    let s = Server::start();
    let prefix = unique("pgo").replace('-', "_");
    create_connector(
        &s,
        "cdc-once",
        pg.config(&prefix, "cdc_once", json!({"snapshot.mode": "initial_only"})),
    )
    .await;
    let topic = format!("{prefix}.public.once");
    let rows = wait_records(&s, &topic, 2, 60).await;
    assert_eq!(ops(&rows), ["r", "r"]);
    pg.sql("INSERT INTO once VALUES (3, 'c')");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(records(&s, &topic).await.len(), 2, "initial_only streams no change");
    assert_eq!(
        pg.sql("SELECT count(*) FROM pg_replication_slots"),
        "0",
        "and creates no slot"
    );
    let (_, status) = send(&s, "GET", "/v1/connectors/cdc-once/status", None).await;
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{status}");

    let config = pg.config(&prefix, "cdc_nopub", json!({"publication.autocreate.mode": "disabled"}));
    create_connector(&s, "cdc-nopub", config).await;
    let trace = failed_trace(&s, "cdc-nopub").await;
    assert!(
        trace.contains("cdc_nopub_pub") && trace.contains("does not exist"),
        "{trace}"
    );
}
