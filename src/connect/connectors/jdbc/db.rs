//! Connections of the JDBC connectors: `connection.url` in JDBC form (`jdbc:postgresql://…`,
//! `jdbc:mariadb://…`, `jdbc:mysql://…`) turned into sqlx options, one pool per task, the
//! dialect's identifier quoting, and database errors turned into task errors that never
//! carry the password.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::connect::plugin::{PutError, TaskError};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MariaDB or MySQL.
    MySql,
}

/// Where and how to connect (the password is kept apart so nothing prints it).
#[derive(Clone)]
pub(super) struct Target {
    pub dialect: Dialect,
    host: String,
    port: u16,
    database: String,
    user: String,
    password: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("dialect", &self.dialect)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Reads `connection.url` (user and password may also be its query parameters; the
    /// `connection.user` and `connection.password` keys win).
    pub fn parse(url: &str, user: &str, password: &str) -> Result<Self, String> {
        let rest = url.trim().strip_prefix("jdbc:").unwrap_or(url.trim());
        let (dialect, default_port) = match rest.split(':').next().unwrap_or_default() {
            "postgresql" | "postgres" => (Dialect::Postgres, 5432),
            "mariadb" | "mysql" => (Dialect::MySql, 3306),
            other => {
                return Err(format!(
                    "unsupported database '{other}': use jdbc:postgresql://, jdbc:mariadb:// or jdbc:mysql://"
                ));
            }
        };
        let parsed = reqwest::Url::parse(rest).map_err(|e| format!("not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL names no host")?;
        let database = parsed.path().trim_start_matches('/').to_owned();
        if database.is_empty() || database.contains('/') {
            return Err("the URL must name one database: jdbc:<db>://host:port/<database>".into());
        }
        let param = |name: &str| {
            parsed
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let user = Some(user.to_owned())
            .filter(|u| !u.is_empty())
            .or_else(|| param("user"))
            .or_else(|| Some(parsed.username().to_owned()).filter(|u| !u.is_empty()))
            .unwrap_or_else(|| {
                if dialect == Dialect::Postgres {
                    "postgres"
                } else {
                    "root"
                }
                .to_owned()
            });
        let password = Some(password.to_owned())
            .filter(|p| !p.is_empty())
            .or_else(|| param("password"))
            .or_else(|| parsed.password().map(str::to_owned))
            .unwrap_or_default();
        Ok(Self {
            dialect,
            host: host.trim_matches(['[', ']']).to_owned(),
            port: parsed.port().unwrap_or(default_port),
            database,
            user,
            password,
        })
    }

    /// A pool of at most `size` connections, connecting on first use.
    pub fn pool(&self, size: u32, timeout: Duration) -> Pool {
        match self.dialect {
            Dialect::Postgres => {
                let mut options = PgConnectOptions::new()
                    .host(&self.host)
                    .port(self.port)
                    .database(&self.database)
                    .username(&self.user)
                    .application_name("weir-jdbc");
                if !self.password.is_empty() {
                    options = options.password(&self.password);
                }
                Pool::Pg(
                    PgPoolOptions::new()
                        .max_connections(size)
                        .acquire_timeout(timeout)
                        .connect_lazy_with(options),
                )
            }
            Dialect::MySql => {
                let mut options = MySqlConnectOptions::new()
                    .host(&self.host)
                    .port(self.port)
                    .database(&self.database)
                    .username(&self.user)
                    .timezone(Some(String::from("+00:00")));
                // An empty password is no password (MariaDB tells the two apart).
                if !self.password.is_empty() {
                    options = options.password(&self.password);
                }
                Pool::My(
                    MySqlPoolOptions::new()
                        .max_connections(size)
                        .acquire_timeout(timeout)
                        .connect_lazy_with(options),
                )
            }
        }
    }

    /// A database error as text with the password, if it appears, hidden.
    pub fn describe(&self, e: &sqlx::Error) -> String {
        let text = e.to_string();
        if self.password.is_empty() {
            text
        } else {
            text.replace(&self.password, "[hidden]")
        }
    }

    /// A database error as a task error: connection trouble is retriable, anything else fatal.
    pub fn task_error(&self, what: &str, e: &sqlx::Error) -> TaskError {
        let message = format!("{what}: {}", self.describe(e));
        if transient(e) {
            TaskError::retriable(message)
        } else {
            TaskError::fatal(message)
        }
    }

    /// A database error of a sink write.
    pub fn put_error(&self, what: &str, e: &sqlx::Error) -> PutError {
        let message = format!("{what}: {}", self.describe(e));
        if transient(e) {
            PutError::Retriable(message)
        } else {
            PutError::Fatal(message)
        }
    }
}

/// Whether trying again may help: the connection, not the statement, failed.
pub(super) fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => {
            // Serialization failures, deadlocks, and the server going away.
            let code = d.code().unwrap_or_default();
            matches!(
                &*code,
                "40001" | "40P01" | "57P01" | "08006" | "08001" | "1213" | "1205"
            )
        }
        _ => false,
    }
}

/// A pool of either database.
#[derive(Debug, Clone)]
pub(super) enum Pool {
    /// PostgreSQL.
    Pg(PgPool),
    /// MariaDB or MySQL.
    My(MySqlPool),
}

impl Pool {
    /// The pool's dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Pg(_) => Dialect::Postgres,
            Self::My(_) => Dialect::MySql,
        }
    }
}

impl Dialect {
    /// An identifier quoted for this dialect: the whole text is one name, whatever it holds.
    pub fn quote(self, name: &str) -> String {
        match self {
            Self::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
            Self::MySql => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// A possibly qualified table name (`schema.table`) quoted part by part.
    pub fn quote_qualified(self, name: &str) -> String {
        name.split('.').map(|p| self.quote(p)).collect::<Vec<_>>().join(".")
    }

    /// The `n`th (from 1) statement parameter.
    pub fn param(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql => "?".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_urls_are_understood() {
        let t = Target::parse("jdbc:postgresql://db.example:6543/sales?user=u", "", "pw").unwrap();
        assert_eq!(
            (t.dialect, t.host.as_str(), t.port, t.database.as_str(), t.user.as_str()),
            (Dialect::Postgres, "db.example", 6543, "sales", "u")
        );
        let t = Target::parse("jdbc:mariadb://127.0.0.1/test", "me", "").unwrap();
        assert_eq!((t.dialect, t.port, t.user.as_str()), (Dialect::MySql, 3306, "me"));
        assert_eq!(Target::parse("jdbc:mysql://h:1/d", "", "").unwrap().user, "root");
        assert!(
            Target::parse("jdbc:oracle:thin:@h:1521/x", "", "")
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(
            Target::parse("jdbc:postgresql://h:5432/", "", "")
                .unwrap_err()
                .contains("one database")
        );
        let debug = format!("{:?}", Target::parse("jdbc:postgresql://h/d", "", "s3cret").unwrap());
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn identifiers_are_quoted_whatever_they_hold() {
        assert_eq!(
            Dialect::Postgres.quote(r#"a"; DROP TABLE x; --"#),
            r#""a""; DROP TABLE x; --""#
        );
        assert_eq!(Dialect::MySql.quote("a`b"), "`a``b`");
        assert_eq!(Dialect::Postgres.quote_qualified("s.t"), r#""s"."t""#);
    }
}
