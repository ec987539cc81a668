//! The connector's SQL side, on sqlx: connecting (errors say what failed, never the password),
//! the `wal_level` check, the publication and the slot, table descriptions and the snapshot's
//! keyset-paged reads.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor as _, Row as _};

use super::Settings;
use crate::connect::plugin::TaskError;

/// A captured table's description.
#[derive(Debug, Clone)]
pub struct Table {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Its columns: name, type OID, type as SQL (`format_type`).
    pub columns: Vec<(String, u32, String)>,
    /// Indexes into `columns` of the primary key (empty: none; pages by `ctid` then).
    pub key: Vec<usize>,
}

impl Table {
    /// `"schema"."name"`, quoted.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }

    /// `schema.name`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// An identifier quoted for SQL.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A database error as a task error: unreachable and transient failures are retriable, the
/// rest fail the task. The message names the server, never the password.
pub fn error(s: &Settings, what: &str, e: &sqlx::Error) -> TaskError {
    let at = format!("{}:{}/{}", s.host, s.port, s.dbname);
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            TaskError::retriable(format!("cannot reach PostgreSQL at {at} ({what}): {e}"))
        }
        sqlx::Error::Database(d) => TaskError::fatal(format!("PostgreSQL at {at} refused {what}: {}", d.message())),
        other => TaskError::fatal(format!("PostgreSQL at {at}, {what}: {other}")),
    }
}

/// A small pool to the configured database.
pub async fn connect(s: &Settings) -> Result<PgPool, TaskError> {
    let options = PgConnectOptions::new()
        .host(&s.host)
        .port(s.port)
        .username(&s.user)
        .password(&s.password)
        .database(&s.dbname)
        .application_name("weir-cdc");
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| error(s, "connecting", &e))
}

/// Fails unless the server runs with `wal_level=logical`.
pub async fn check_wal_level(s: &Settings, pool: &PgPool) -> Result<(), TaskError> {
    let level: String = sqlx::query_scalar("SHOW wal_level")
        .fetch_one(pool)
        .await
        .map_err(|e| error(s, "SHOW wal_level", &e))?;
    if level == "logical" {
        Ok(())
    } else {
        Err(TaskError::fatal(format!(
            "wal_level is '{level}' on PostgreSQL at {}:{}; change data capture needs wal_level=logical \
(set it in postgresql.conf and restart the server)",
            s.host, s.port
        )))
    }
}

/// The ordinary tables of the database that `table.include.list` matches, by name.
pub async fn included_tables(s: &Settings, pool: &PgPool) -> Result<Vec<(String, String)>, TaskError> {
    let rows = sqlx::query(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| error(s, "listing tables", &e))?;
    let mut out = Vec::new();
    for row in rows {
        let schema: String = row.try_get(0).map_err(|e| error(s, "listing tables", &e))?;
        let name: String = row.try_get(1).map_err(|e| error(s, "listing tables", &e))?;
        if s.includes(&schema, &name) {
            out.push((schema, name));
        }
    }
    if out.is_empty() && !s.include.is_empty() {
        return Err(TaskError::fatal(format!(
            "table.include.list matches no table of database '{}'",
            s.dbname
        )));
    }
    Ok(out)
}

/// Makes sure the publication exists, per `publication.autocreate.mode`.
pub async fn ensure_publication(s: &Settings, pool: &PgPool, tables: &[(String, String)]) -> Result<(), TaskError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
        .bind(&s.publication)
        .fetch_one(pool)
        .await
        .map_err(|e| error(s, "looking up the publication", &e))?;
    let list = tables
        .iter()
        .map(|(schema, name)| format!("{}.{}", quote(schema), quote(name)))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = match (s.autocreate.as_str(), exists) {
        ("filtered", _) if tables.is_empty() => {
            return Err(TaskError::fatal(format!(
                "publication.autocreate.mode=filtered: no table of database '{}' to publish",
                s.dbname
            )));
        }
        ("filtered", true) => format!("ALTER PUBLICATION {} SET TABLE {list}", quote(&s.publication)),
        ("filtered", false) => format!("CREATE PUBLICATION {} FOR TABLE {list}", quote(&s.publication)),
        (_, true) => return Ok(()),
        ("all_tables", false) => format!("CREATE PUBLICATION {} FOR ALL TABLES", quote(&s.publication)),
        _ => {
            return Err(TaskError::fatal(format!(
                "publication '{}' does not exist and publication.autocreate.mode is disabled",
                s.publication
            )));
        }
    };
    pool.execute(sql.as_str())
        .await
        .map_err(|e| error(s, "creating the publication", &e))?;
    Ok(())
}

/// The slot's confirmed position, creating the slot (at the current WAL position) if missing.
pub async fn ensure_slot(s: &Settings, pool: &PgPool) -> Result<u64, TaskError> {
    if let Some(lsn) = slot_position(s, pool).await? {
        return Ok(lsn);
    }
    let lsn: Option<String> =
        sqlx::query_scalar("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')")
            .bind(&s.slot)
            .fetch_one(pool)
            .await
            .map_err(|e| error(s, "creating the replication slot", &e))?;
    lsn.as_deref()
        .and_then(parse_lsn)
        .ok_or_else(|| TaskError::fatal(format!("slot '{}' has no confirmed position", s.slot)))
}

/// The slot's confirmed position; `None` when it does not exist. A slot of another plugin or
/// database is an error.
pub async fn slot_position(s: &Settings, pool: &PgPool) -> Result<Option<u64>, TaskError> {
    let row = sqlx::query(
        "SELECT plugin::text, database::text, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(&s.slot)
    .fetch_optional(pool)
    .await
    .map_err(|e| error(s, "looking up the slot", &e))?;
    let Some(row) = row else { return Ok(None) };
    let read = |i: usize| -> Result<Option<String>, TaskError> {
        row.try_get(i).map_err(|e| error(s, "reading the slot", &e))
    };
    if read(0)?.as_deref() != Some("pgoutput") || read(1)?.as_deref() != Some(s.dbname.as_str()) {
        return Err(TaskError::fatal(format!(
            "slot '{}' exists but is not a pgoutput slot of database '{}'",
            s.slot, s.dbname
        )));
    }
    read(2)?
        .as_deref()
        .and_then(parse_lsn)
        .map(Some)
        .ok_or_else(|| TaskError::fatal(format!("slot '{}' has no confirmed position", s.slot)))
}

/// Creates the slot on a replication session with `EXPORT_SNAPSHOT` and imports that snapshot
/// into a `REPEATABLE READ` transaction on `conn`: what `conn` reads is the database exactly as
/// of the slot's start. Returns the slot's start LSN.
pub async fn create_slot_with_snapshot(s: &Settings, conn: &mut sqlx::PgConnection) -> Result<u64, TaskError> {
    let config = pgwire_replication::ReplicationConfig::new(
        s.host.clone(),
        s.user.clone(),
        s.password.clone(),
        s.dbname.clone(),
        s.slot.clone(),
        s.publication.clone(),
    )
    .with_port(s.port)
    .with_application_name("weir-cdc-snapshot");
    let fail = |e: pgwire_replication::PgWireError| {
        let message = format!("creating slot '{}' on {}:{}: {e}", s.slot, s.host, s.port);
        if e.is_transient() {
            TaskError::retriable(message)
        } else {
            TaskError::fatal(message)
        }
    };
    let mut session = pgwire_replication::ReplicationClient::connect_gated(config)
        .await
        .map_err(fail)?;
    let rows = session
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
            s.slot
        ))
        .await
        .map_err(fail)?;
    let text = |i: usize| -> Option<String> {
        let cell = rows.first()?.get(i)?.as_ref()?;
        Some(String::from_utf8_lossy(cell).into_owned())
    };
    let lsn = text(1).as_deref().and_then(parse_lsn);
    let snapshot = text(2).filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    let (Some(lsn), Some(snapshot)) = (lsn, snapshot) else {
        return Err(TaskError::fatal(format!(
            "slot '{}': unexpected CREATE_REPLICATION_SLOT answer",
            s.slot
        )));
    };
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| error(s, "starting the snapshot transaction", &e))?;
    conn.execute(format!("SET TRANSACTION SNAPSHOT '{snapshot}'").as_str())
        .await
        .map_err(|e| error(s, "importing the slot's snapshot", &e))?;
    // The snapshot is imported: the exporting session may end.
    drop(session);
    Ok(lsn)
}

/// The current WAL position.
pub async fn current_lsn(s: &Settings, pool: &PgPool) -> Result<u64, TaskError> {
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await
        .map_err(|e| error(s, "reading the WAL position", &e))?;
    parse_lsn(&lsn).ok_or_else(|| TaskError::fatal(format!("unreadable WAL position '{lsn}'")))
}

/// `16/B374D848` as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// A table's columns and primary key, by schema and name or by OID.
pub async fn describe(s: &Settings, pool: &PgPool, table: TableRef<'_>) -> Result<Table, TaskError> {
    let (filter, schema, name, oid) = match table {
        TableRef::Name(schema, name) => ("c.relname = $1 AND n.nspname = $2", schema, name, 0),
        TableRef::Oid(oid) => ("c.oid = $3", "", "", oid),
    };
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, a.attname::text, a.atttypid::int8, \
         format_type(a.atttypid, a.atttypmod), \
         COALESCE(a.attnum = ANY (SELECT unnest(i.indkey) FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), false) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE {filter} ORDER BY a.attnum"
    );
    let rows = sqlx::query(&sql)
        .bind(name)
        .bind(schema)
        .bind(i64::from(oid))
        .fetch_all(pool)
        .await
        .map_err(|e| error(s, "describing a table", &e))?;
    let mut out = Table {
        schema: String::new(),
        name: String::new(),
        columns: Vec::new(),
        key: Vec::new(),
    };
    for row in rows {
        let get =
            |i: usize| -> Result<String, TaskError> { row.try_get(i).map_err(|e| error(s, "describing a table", &e)) };
        out.schema = get(0)?;
        out.name = get(1)?;
        let type_oid: i64 = row.try_get(3).map_err(|e| error(s, "describing a table", &e))?;
        let is_key: bool = row.try_get(5).map_err(|e| error(s, "describing a table", &e))?;
        if is_key {
            out.key.push(out.columns.len());
        }
        out.columns
            .push((get(2)?, u32::try_from(type_oid).unwrap_or(0), get(4)?));
    }
    if out.columns.is_empty() {
        return Err(TaskError::fatal(match table {
            TableRef::Name(schema, name) => format!("table {schema}.{name} does not exist"),
            TableRef::Oid(oid) => format!("table with OID {oid} does not exist"),
        }));
    }
    Ok(out)
}

/// How a table is named.
#[derive(Debug, Clone, Copy)]
pub enum TableRef<'a> {
    /// By schema and name.
    Name(&'a str, &'a str),
    /// By OID.
    Oid(u32),
}

/// Up to `limit` rows after `after` (the key's values as text, or the `ctid` when the table
/// has no primary key), in key order: each row's columns as text, then its key as text.
pub async fn snapshot_page(
    s: &Settings,
    conn: &mut sqlx::PgConnection,
    table: &Table,
    after: Option<&[String]>,
    limit: i64,
) -> Result<Vec<(Vec<Option<String>>, Vec<String>)>, TaskError> {
    // Qualified by the table's alias: a bare name in ORDER BY would mean the output column of
    // that name, the value cast to text (ordering 10 before 9).
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|(n, _, _)| format!("t.{}::text", quote(n)))
        .collect();
    let (key_exprs, key_types): (Vec<String>, Vec<String>) = if table.key.is_empty() {
        (vec!["t.ctid".to_owned()], vec!["tid".to_owned()])
    } else {
        table
            .key
            .iter()
            .map(|&i| (format!("t.{}", quote(&table.columns[i].0)), table.columns[i].2.clone()))
            .unzip()
    };
    let mut sql = format!(
        "SELECT {}, {} FROM {} AS t",
        cols.join(", "),
        key_exprs
            .iter()
            .map(|k| format!("{k}::text"))
            .collect::<Vec<_>>()
            .join(", "),
        table.quoted()
    );
    if after.is_some() {
        let params: Vec<String> = key_types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("${}::text::{t}", i + 1))
            .collect();
        sql.push_str(&format!(" WHERE ({}) > ({})", key_exprs.join(", "), params.join(", ")));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", key_exprs.join(", ")));
    let mut query = sqlx::query(&sql);
    for v in after.unwrap_or_default() {
        query = query.bind(v);
    }
    let rows = query
        .fetch_all(conn)
        .await
        .map_err(|e| error(s, &format!("reading table {}", table.full_name()), &e))?;
    let width = table.columns.len();
    rows.iter()
        .map(|row| {
            let read = |i: usize| -> Result<Option<String>, TaskError> {
                row.try_get(i).map_err(|e| error(s, "reading a snapshot row", &e))
            };
            let values = (0..width).map(read).collect::<Result<Vec<_>, _>>()?;
            let key = (width..width + key_exprs.len())
                .map(|i| read(i).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((values, key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lsns_and_quotes_names() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("nope"), None);
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
