//! Running a statement on either database: parameters, rows as JSON objects with their
//! column types, and the metadata queries the connectors need (tables, primary keys, columns).

use sqlx::{Row as _, TypeInfo as _};

use super::db::{Dialect, Pool};
use super::types::{self, MyKind, Numeric, PgKind, Plan, Row, Shape};

/// A statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bind {
    /// An integer.
    Int(i64),
    /// Text (the database converts it to the column's type where it can).
    Text(String),
}

/// Rows read, with each column's type name (the database's spelling, upper case).
#[derive(Debug, Default)]
pub(super) struct Rows {
    /// Column names and type names.
    pub columns: Vec<(String, String)>,
    /// The rows as JSON text.
    pub rows: Vec<Row>,
}

impl Rows {
    /// The type name of a column.
    pub fn type_of(&self, column: &str) -> Option<&str> {
        self.columns.iter().find(|(c, _)| c == column).map(|(_, t)| t.as_str())
    }
}

/// `sql` with its parameters bound, for either database (the query types differ, not their use).
macro_rules! query_with {
    ($sql:expr, $binds:expr) => {{
        let mut q = sqlx::query($sql);
        for b in $binds {
            q = match b {
                Bind::Int(i) => q.bind(*i),
                Bind::Text(t) => q.bind(t.clone()),
            };
        }
        q
    }};
}

/// The body of [`fetch`] for one database's pool: the same steps, with that database's row type
/// and column kinds (sqlx's pools differ in type, not in shape).
macro_rules! fetch_on {
    ($pool:expr, $sql:expr, $binds:expr, $shape:expr, $numeric:expr, $kind_of:path, $cell:path) => {{
        let rows = query_with!($sql, $binds).fetch_all($pool).await.map_err(Failure::Db)?;
        let Some(first) = rows.first() else {
            return Ok(Rows::default());
        };
        let columns = describe(first.columns());
        let plan = Plan::new(first.columns(), $kind_of, $shape).map_err(Failure::Map)?;
        let (mut spans, mut hint) = (Vec::new(), 64);
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let written = plan.write(|i, kind, text| $cell(row, i, kind, $numeric, text), &mut spans, hint);
            let written = written.map_err(Failure::Map)?;
            hint = written.value.len() + 8;
            out.push(written);
        }
        Ok(Rows { columns, rows: out })
    }};
}

/// Runs a query and writes its rows, taking what `shape` names from each.
pub(super) async fn fetch(
    pool: &Pool,
    sql: &str,
    binds: &[Bind],
    numeric: Numeric,
    shape: &Shape,
) -> Result<Rows, Failure> {
    match pool {
        Pool::Pg(p) => fetch_on!(p, sql, binds, shape, numeric, PgKind::of, types::pg_cell),
        Pool::My(p) => fetch_on!(p, sql, binds, shape, numeric, MyKind::of, types::my_cell),
    }
}

fn describe<C: sqlx::Column>(columns: &[C]) -> Vec<(String, String)> {
    columns
        .iter()
        .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
        .collect()
}

/// Why a query failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The database refused or could not be reached.
    Db(sqlx::Error),
    /// A value could not be mapped to JSON.
    Map(String),
}

/// Text values of a one-column query.
pub(super) async fn strings(pool: &Pool, sql: &str, binds: &[Bind]) -> Result<Vec<String>, sqlx::Error> {
    match pool {
        Pool::Pg(p) => {
            let rows = query_with!(sql, binds).fetch_all(p).await?;
            rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
        }
        Pool::My(p) => {
            let rows = query_with!(sql, binds).fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    // information_schema answers may be binary strings on MySQL.
                    r.try_get::<String, _>(0).or_else(|_| {
                        r.try_get::<Vec<u8>, _>(0)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                    })
                })
                .collect()
        }
    }
}

/// The tables of the connection's current schema (PostgreSQL) or database (MariaDB), sorted.
pub(super) async fn tables(pool: &Pool) -> Result<Vec<String>, sqlx::Error> {
    let sql = match pool.dialect() {
        Dialect::Postgres => {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_type = 'BASE TABLE' ORDER BY 1"
        }
        Dialect::MySql => {
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE() \
             AND table_type = 'BASE TABLE' ORDER BY 1"
        }
    };
    strings(pool, sql, &[]).await
}

/// Splits `schema.table` (a name without a dot is in the current schema).
pub(super) fn split(table: &str) -> (Option<&str>, &str) {
    match table.rsplit_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, table),
    }
}

/// The primary key columns of a table, in key order (empty when it has none).
pub(super) async fn primary_key(pool: &Pool, table: &str) -> Result<Vec<String>, sqlx::Error> {
    let (schema, name) = split(table);
    let schema = Bind::Text(schema.unwrap_or_default().to_owned());
    let name = Bind::Text(name.to_owned());
    let sql = match pool.dialect() {
        Dialect::Postgres => {
            "SELECT k.column_name::text FROM information_schema.table_constraints c \
             JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name \
             AND k.table_schema = c.table_schema AND k.table_name = c.table_name \
             WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_name = $2 \
             AND c.table_schema = COALESCE(NULLIF($1, ''), current_schema()) ORDER BY k.ordinal_position"
        }
        Dialect::MySql => {
            "SELECT CAST(column_name AS CHAR) FROM information_schema.key_column_usage \
             WHERE table_schema = COALESCE(NULLIF(?, ''), DATABASE()) AND table_name = ? \
             AND constraint_name = 'PRIMARY' ORDER BY ordinal_position"
        }
    };
    strings(pool, sql, &[schema, name]).await
}

/// A table's columns: name, data type (lower case) and whether it may be null; empty when
/// the table does not exist.
pub(super) async fn columns(
    pool: &Pool,
    schema: Option<&str>,
    name: &str,
) -> Result<Vec<(String, String, bool)>, sqlx::Error> {
    let schema = Bind::Text(schema.unwrap_or_default().to_owned());
    let name = Bind::Text(name.to_owned());
    let sql = match pool.dialect() {
        Dialect::Postgres => {
            "SELECT column_name::text || '|' || lower(data_type::text) || '|' || is_nullable::text \
             FROM information_schema.columns WHERE table_name = $2 \
             AND table_schema = COALESCE(NULLIF($1, ''), current_schema()) ORDER BY ordinal_position"
        }
        Dialect::MySql => {
            "SELECT CAST(CONCAT(column_name, '|', LOWER(data_type), '|', is_nullable) AS CHAR) \
             FROM information_schema.columns WHERE table_schema = COALESCE(NULLIF(?, ''), DATABASE()) \
             AND table_name = ? ORDER BY ordinal_position"
        }
    };
    let rows = strings(pool, sql, &[schema, name]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            // Column names may hold '|': the type and nullability are the last two parts.
            let (rest, nullable) = r.rsplit_once('|')?;
            let (name, ty) = rest.rsplit_once('|')?;
            Some((name.to_owned(), ty.to_owned(), nullable == "YES"))
        })
        .collect())
}
