//! The SQL of the Streams API: statements split from a script, the streaming statements that no
//! `sqlparser` dialect knows (`CREATE STREAM`, `DROP STREAM|TABLE`, `TERMINATE`, `SHOW`,
//! `DESCRIBE`, `EXPLAIN <id>`, a trailing `EMIT CHANGES|FINAL`) read here, and everything else
//! parsed by `sqlparser` (pinned to one version: its API changes between versions).
//!
//! Errors point at the line and column of the whole script.

mod split;

use std::collections::BTreeMap;

use sqlparser::ast::{self, CreateTableOptions, Expr, SqlOption, Statement as SqlStatement};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::value::SqlType;
pub use split::Segment;

/// Whether an object is a stream (an unbounded sequence of events) or a table (the latest value
/// per key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    /// A stream.
    Stream,
    /// A table.
    Table,
}

/// When an aggregate emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Emit {
    /// Every update.
    Changes,
    /// Once per window, when it closes.
    Final,
}

/// A declared column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ColumnDef {
    /// Its name (lower case).
    pub name: String,
    /// Its type.
    pub ty: SqlType,
    /// Whether it is (part of) the table's primary key.
    pub primary_key: bool,
}

/// A `WITH (…)` option value.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// A duration given as an `INTERVAL`, in ms.
    Duration(i64),
}

/// `WITH (…)` options by lower-case name.
pub type Options = BTreeMap<String, OptionValue>;

/// What `SHOW` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowWhat {
    /// Streams.
    Streams,
    /// Tables.
    Tables,
    /// Persistent queries.
    Queries,
}

/// A statement of the Streams API.
#[derive(Debug, Clone)]
pub enum Statement {
    /// `CREATE STREAM|TABLE name (columns) WITH (…)`: declares a topic.
    CreateSource {
        /// Stream or table.
        kind: Kind,
        /// Its name (lower case).
        name: String,
        /// Its columns.
        columns: Vec<ColumnDef>,
        /// Its options.
        options: Options,
    },
    /// `CREATE STREAM|TABLE name [WITH (…)] AS SELECT …`: a persistent query.
    CreateAs {
        /// Stream or table.
        kind: Kind,
        /// Its name (lower case).
        name: String,
        /// Its options.
        options: Options,
        /// The query.
        query: Box<ast::Query>,
        /// Its emit mode, if given.
        emit: Option<Emit>,
    },
    /// `INSERT INTO stream SELECT …`.
    InsertInto {
        /// The target (lower case).
        target: String,
        /// The query.
        query: Box<ast::Query>,
        /// Its emit mode, if given.
        emit: Option<Emit>,
    },
    /// `DROP STREAM|TABLE [IF EXISTS] name`.
    Drop {
        /// Stream or table.
        kind: Kind,
        /// The name (lower case).
        name: String,
        /// Whether a missing object is fine.
        if_exists: bool,
    },
    /// `TERMINATE <query id>`.
    Terminate {
        /// The query id.
        id: String,
    },
    /// `SHOW STREAMS|TABLES|QUERIES`.
    Show(ShowWhat),
    /// `DESCRIBE name`.
    Describe {
        /// The name (lower case).
        name: String,
    },
    /// `EXPLAIN <query id>`.
    ExplainQuery {
        /// The query id.
        id: String,
    },
    /// `EXPLAIN SELECT …`.
    ExplainSelect {
        /// The query.
        query: Box<ast::Query>,
        /// Its emit mode, if given.
        emit: Option<Emit>,
    },
    /// A `SELECT` (a push query with `EMIT`, else a pull query).
    Select {
        /// The query.
        query: Box<ast::Query>,
        /// Its emit mode, if given.
        emit: Option<Emit>,
    },
}

/// A statement and where it was in the script.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The statement.
    pub statement: Statement,
    /// Its text, trimmed.
    pub text: String,
    /// Its first line (1-based).
    pub line: usize,
    /// Its first column (1-based).
    pub column: usize,
    /// Where `text` starts in the script (line, column), comments included.
    pub text_at: (usize, usize),
}

/// A SQL error, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// What is wrong.
    pub message: String,
    /// Its line (1-based).
    pub line: usize,
    /// Its column (1-based).
    pub column: usize,
}

impl SqlError {
    /// An error at a position.
    pub fn at(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            line,
            column,
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (line {}, column {})", self.message, self.line, self.column)
    }
}

/// Parses a script of `;`-separated statements.
pub fn parse(script: &str) -> Result<Vec<Parsed>, SqlError> {
    let segments = split::split(script)?;
    if segments.is_empty() {
        return Err(SqlError::at(1, 1, "no statement: the SQL is empty"));
    }
    segments.iter().map(|s| parse_segment(script, s)).collect()
}

/// The words of a statement (upper case) with their positions, comments and whitespace skipped.
fn words(text: &str) -> Result<Vec<(String, Token, usize, usize)>, SqlError> {
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location.line as usize, e.location.column as usize, e.message))?;
    Ok(tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| {
            let upper = match &t.token {
                Token::Word(w) => w.value.to_ascii_uppercase(),
                other => other.to_string(),
            };
            (upper, t.token, t.span.start.line as usize, t.span.start.column as usize)
        })
        .collect())
}

fn parse_segment(script: &str, seg: &Segment) -> Result<Parsed, SqlError> {
    let text = &script[seg.start..seg.end];
    let toks = words(&seg.blanked(script))?;
    let word = |i: usize| toks.get(i).map_or("", |t| t.0.as_str());
    let (line, column) = (toks[0].2, toks[0].3);
    let lead = text.len() - text.trim_start().len();
    let text_at = split::position(script, seg.start + lead);
    let parsed = |statement| Parsed {
        statement,
        text: text.trim().to_owned(),
        line,
        column,
        text_at,
    };
    let name_at = |i: usize| -> Result<String, SqlError> {
        match toks.get(i) {
            Some((_, Token::Word(w), _, _)) => Ok(w.value.to_lowercase()),
            Some((_, _, l, c)) => Err(SqlError::at(*l, *c, "expected a name")),
            None => Err(SqlError::at(line, column, "expected a name")),
        }
    };
    let only = |n: usize, what: &str| -> Result<(), SqlError> {
        match toks.get(n) {
            None => Ok(()),
            Some((w, _, l, c)) => Err(SqlError::at(*l, *c, format!("unexpected '{w}' after {what}"))),
        }
    };
    match (word(0), word(1)) {
        ("DROP", k @ ("STREAM" | "TABLE")) => {
            let if_exists = word(2) == "IF" && word(3) == "EXISTS";
            let at = if if_exists { 4 } else { 2 };
            let name = name_at(at)?;
            only(at + 1, "the name")?;
            let kind = if k == "STREAM" { Kind::Stream } else { Kind::Table };
            Ok(parsed(Statement::Drop { kind, name, if_exists }))
        }
        ("TERMINATE", _) => {
            let id = toks
                .get(1)
                .map(|t| t.0.clone())
                .ok_or_else(|| SqlError::at(line, column, "TERMINATE needs a query id"))?;
            only(2, "the query id")?;
            Ok(parsed(Statement::Terminate { id }))
        }
        ("SHOW" | "LIST", w) => {
            let what = match w {
                "STREAMS" => ShowWhat::Streams,
                "TABLES" => ShowWhat::Tables,
                "QUERIES" => ShowWhat::Queries,
                _ => return Err(SqlError::at(line, column, "SHOW STREAMS, SHOW TABLES or SHOW QUERIES")),
            };
            only(2, "SHOW")?;
            Ok(parsed(Statement::Show(what)))
        }
        ("DESCRIBE" | "DESC", _) => {
            let name = name_at(1)?;
            only(2, "the name")?;
            Ok(parsed(Statement::Describe { name }))
        }
        ("EXPLAIN", w) if w != "SELECT" && toks.len() == 2 => {
            Ok(parsed(Statement::ExplainQuery { id: toks[1].0.clone() }))
        }
        _ => parse_sql(script, seg, &toks).map(parsed),
    }
}

/// Parses a statement `sqlparser` knows, after rewriting `CREATE STREAM` as `CREATE TABLE` (in
/// place, so positions stay true) and taking off a trailing `EMIT CHANGES|FINAL`.
fn parse_sql(script: &str, seg: &Segment, toks: &[(String, Token, usize, usize)]) -> Result<Statement, SqlError> {
    let mut text = seg.blanked(script);
    // `EMIT CHANGES|FINAL` ends the query (before a `LIMIT`, as ksqlDB writes it, or after).
    let mut emit = None;
    for (i, pair) in toks.windows(2).enumerate() {
        if let ("EMIT", w @ ("CHANGES" | "FINAL")) = (pair[0].0.as_str(), pair[1].0.as_str()) {
            if emit.is_some() {
                return Err(SqlError::at(pair[0].2, pair[0].3, "EMIT given twice"));
            }
            split::blank_words(&mut text, &toks[i..i + 2], &[4, w.len()]);
            emit = Some(if w == "CHANGES" { Emit::Changes } else { Emit::Final });
        }
    }
    let mut kind = Kind::Table;
    let mut explain = false;
    if toks.first().map(|t| t.0.as_str()) == Some("EXPLAIN") {
        explain = true;
        split::blank_words(&mut text, &toks[..1], &[7]);
    }
    if toks.len() > 1 && toks[0].0 == "CREATE" && toks[1].0 == "STREAM" {
        kind = Kind::Stream;
        split::replace_word(&mut text, &toks[1], "TABLE ");
    }
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, &text).map_err(|e| parser_error(&e.to_string(), toks))?;
    if statements.len() != 1 {
        return Err(SqlError::at(toks[0].2, toks[0].3, "expected one statement"));
    }
    let (line, column) = (toks[0].2, toks[0].3);
    match statements.remove(0) {
        SqlStatement::Query(query) if explain => Ok(Statement::ExplainSelect { query, emit }),
        SqlStatement::Query(query) => Ok(Statement::Select { query, emit }),
        SqlStatement::CreateTable(ct) => create(kind, ct, emit, line, column),
        SqlStatement::Insert(ins) => {
            let target = match &ins.table {
                ast::TableObject::TableName(n) => object_name(n),
                _ => return Err(SqlError::at(line, column, "INSERT INTO needs a stream name")),
            };
            let query = ins
                .source
                .ok_or_else(|| SqlError::at(line, column, "INSERT INTO <stream> SELECT …"))?;
            Ok(Statement::InsertInto { target, query, emit })
        }
        other => Err(SqlError::at(
            line,
            column,
            format!(
                "not a statement of the Streams API: {}",
                first_words(&other.to_string())
            ),
        )),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// Where a `sqlparser` error points (`… at Line: 3, Column: 14`).
fn parser_error(message: &str, toks: &[(String, Token, usize, usize)]) -> SqlError {
    let re = regex::Regex::new(r"Line: (\d+), Column: (\d+)").expect("a valid regex");
    let (line, column) = re
        .captures(message)
        .and_then(|c| Some((c[1].parse().ok()?, c[2].parse().ok()?)))
        .unwrap_or_else(|| toks.last().map_or((1, 1), |t| (t.2, t.3)));
    let message = message
        .trim_start_matches("sql parser error: ")
        .split(" at Line:")
        .next()
        .unwrap_or(message)
        .to_owned();
    SqlError::at(line, column, message)
}

/// A name as written, in lower case (`schema.name` joined with dots).
pub fn object_name(n: &ast::ObjectName) -> String {
    n.0.iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => i.value.to_lowercase(),
            other => other.to_string().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn create(
    kind: Kind,
    ct: ast::CreateTable,
    emit: Option<Emit>,
    line: usize,
    column: usize,
) -> Result<Statement, SqlError> {
    let name = object_name(&ct.name);
    let options = match ct.table_options {
        CreateTableOptions::None => Options::new(),
        CreateTableOptions::With(opts) | CreateTableOptions::Options(opts) | CreateTableOptions::Plain(opts) => {
            read_options(&opts, line, column)?
        }
        CreateTableOptions::TableProperties(_) => {
            return Err(SqlError::at(line, column, "give options as WITH (name = value, …)"));
        }
    };
    if let Some(query) = ct.query {
        if !ct.columns.is_empty() {
            return Err(SqlError::at(
                line,
                column,
                "CREATE … AS SELECT takes its columns from the query",
            ));
        }
        return Ok(Statement::CreateAs {
            kind,
            name,
            options,
            query,
            emit,
        });
    }
    if emit.is_some() {
        return Err(SqlError::at(line, column, "EMIT belongs to a query"));
    }
    let mut keys: Vec<String> = Vec::new();
    for c in &ct.constraints {
        if let ast::TableConstraint::PrimaryKey(pk) = c {
            keys.extend(pk.columns.iter().map(|c| c.to_string().to_lowercase()));
        }
    }
    let columns = ct
        .columns
        .iter()
        .map(|c| {
            let pk = c
                .options
                .iter()
                .any(|o| matches!(o.option, ast::ColumnOption::PrimaryKey(_)));
            Ok(ColumnDef {
                name: c.name.value.to_lowercase(),
                ty: sql_type(&c.data_type)
                    .map_err(|m| SqlError::at(line, column, format!("column {}: {m}", c.name.value)))?,
                primary_key: pk || keys.contains(&c.name.value.to_lowercase()),
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?;
    Ok(Statement::CreateSource {
        kind,
        name,
        columns,
        options,
    })
}

/// Reads `WITH (…)` options: text, numbers and intervals.
fn read_options(opts: &[SqlOption], line: usize, column: usize) -> Result<Options, SqlError> {
    let mut out = Options::new();
    for o in opts {
        let SqlOption::KeyValue { key, value } = o else {
            return Err(SqlError::at(line, column, format!("option '{o}' needs a value")));
        };
        let v = match value {
            Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => OptionValue::Text(s.clone()),
                ast::Value::Number(n, _) => OptionValue::Number(n.parse().unwrap_or(f64::NAN)),
                ast::Value::Boolean(b) => OptionValue::Text(b.to_string()),
                other => OptionValue::Text(other.to_string()),
            },
            Expr::Identifier(i) => OptionValue::Text(i.value.clone()),
            Expr::Interval(iv) => OptionValue::Duration(interval_ms(iv).map_err(|m| SqlError::at(line, column, m))?),
            other => {
                return Err(SqlError::at(
                    line,
                    column,
                    format!("option {key}: unsupported value {other}"),
                ));
            }
        };
        out.insert(object_name(key), v);
    }
    Ok(out)
}

/// An `INTERVAL '5' SECOND` or `INTERVAL '1 hour'` in ms.
pub fn interval_ms(iv: &ast::Interval) -> Result<i64, String> {
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            ast::Value::Number(n, _) => n.clone(),
            other => return Err(format!("unsupported interval {other}")),
        },
        other => return Err(format!("unsupported interval {other}")),
    };
    let (amount, unit) = match &iv.leading_field {
        Some(f) => (text.trim().to_owned(), f.to_string()),
        None => {
            let mut parts = text.split_whitespace();
            let a = parts.next().unwrap_or("").to_owned();
            (a, parts.next().unwrap_or("").to_owned())
        }
    };
    let n: f64 = amount
        .parse()
        .map_err(|_| format!("interval amount '{amount}' is not a number"))?;
    let unit_ms = match unit.to_ascii_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1.0,
        "SECOND" => 1_000.0,
        "MINUTE" => 60_000.0,
        "HOUR" => 3_600_000.0,
        "DAY" => 86_400_000.0,
        "WEEK" => 604_800_000.0,
        other => return Err(format!("unsupported interval unit '{other}' (use MILLISECOND to WEEK)")),
    };
    Ok((n * unit_ms).round() as i64)
}

/// A declared SQL type.
pub fn sql_type(t: &ast::DataType) -> Result<SqlType, String> {
    use ast::DataType as D;
    Ok(match t {
        D::Boolean | D::Bool => SqlType::Boolean,
        D::Int(_) | D::Integer(_) | D::Int32 | D::SmallInt(_) | D::TinyInt(_) => SqlType::Int,
        D::BigInt(_) | D::Int64 => SqlType::Bigint,
        D::Double(_) | D::DoublePrecision | D::Float64 | D::Float(_) | D::Real => SqlType::Double,
        D::Decimal(info) | D::Numeric(info) => {
            let (p, s) = match info {
                ast::ExactNumberInfo::None => (38, 0),
                ast::ExactNumberInfo::Precision(p) => (*p, 0),
                ast::ExactNumberInfo::PrecisionAndScale(p, s) => (*p, (*s).max(0) as u64),
            };
            if p > 38 || s > p {
                return Err(format!(
                    "DECIMAL({p},{s}): precision at most 38 and scale at most the precision"
                ));
            }
            SqlType::Decimal {
                precision: p as u8,
                scale: s as u8,
            }
        }
        D::Text | D::Varchar(_) | D::String(_) | D::Char(_) | D::CharVarying(_) => SqlType::Text,
        D::Timestamp(_, _) | D::Datetime(_) => SqlType::Timestamp,
        D::JSON | D::JSONB => SqlType::Json,
        other => return Err(format!("unsupported type {other}")),
    })
}
