//! Expressions: compiled from `sqlparser`'s AST against the columns in scope, and evaluated
//! over one row. An evaluation error (a cast that fails, a function given the wrong type) is
//! an error of that record, not of the query.

use std::borrow::Cow;
use std::cmp::Ordering;

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive as _;
use sqlparser::ast::{self, BinaryOperator, Expr as SqlExpr, UnaryOperator};

use super::value::{Datum, SqlType, format_timestamp, parse_timestamp};

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A column of the row, by position.
    Column(usize),
    /// A constant.
    Literal(Datum),
    /// The record's timestamp (`ROWTIME`).
    RowTime,
    /// The window's start (ms).
    WindowStart,
    /// The window's end (ms).
    WindowEnd,
    /// A group key of an aggregate row, by position.
    Key(usize),
    /// An aggregate's result, by position.
    Agg(usize),
    /// An operator.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `NOT x`.
    Not(Box<Expr>),
    /// `-x`.
    Neg(Box<Expr>),
    /// `x IS [NOT] NULL`.
    IsNull(Box<Expr>, bool),
    /// `x [NOT] IN (…)`.
    InList(Box<Expr>, Vec<Expr>, bool),
    /// `x [NOT] BETWEEN a AND b`.
    Between(Box<Expr>, Box<Expr>, Box<Expr>, bool),
    /// `x [NOT] LIKE pattern` (compiled to a regular expression).
    Like(Box<Expr>, regex::Regex, bool),
    /// `CASE [x] WHEN … THEN … [ELSE …] END`.
    Case(Option<Box<Expr>>, Vec<(Expr, Expr)>, Option<Box<Expr>>),
    /// `CAST(x AS type)`.
    Cast(Box<Expr>, SqlType),
    /// A scalar function.
    Call(Func, Vec<Expr>),
    /// A field of a nested JSON value, by a path of names and indexes.
    Field(Box<Expr>, Vec<PathPart>),
}

/// A step into a nested value.
#[derive(Debug, Clone, PartialEq)]
pub enum PathPart {
    /// An object member.
    Name(String),
    /// An array element.
    Index(usize),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
    /// `=`.
    Eq,
    /// `<>`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
    /// `AND`.
    And,
    /// `OR`.
    Or,
    /// `||`.
    Concat,
}

/// A scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `UPPER(s)`.
    Upper,
    /// `LOWER(s)`.
    Lower,
    /// `TRIM(s)`.
    Trim,
    /// `LTRIM(s)`.
    Ltrim,
    /// `RTRIM(s)`.
    Rtrim,
    /// `LENGTH(s)`.
    Length,
    /// `SUBSTRING(s, from [, len])`, 1-based.
    Substring,
    /// `CONCAT(a, b, …)`.
    Concat,
    /// `REPLACE(s, from, to)`.
    Replace,
    /// `LPAD(s, n, pad)`.
    Lpad,
    /// `RPAD(s, n, pad)`.
    Rpad,
    /// `ABS(x)`.
    Abs,
    /// `ROUND(x [, digits])`.
    Round,
    /// `FLOOR(x)`.
    Floor,
    /// `CEIL(x)`.
    Ceil,
    /// `SQRT(x)`.
    Sqrt,
    /// `POWER(x, y)`.
    Power,
    /// `LN(x)`.
    Ln,
    /// `EXP(x)`.
    Exp,
    /// `GREATEST(a, b, …)`.
    Greatest,
    /// `LEAST(a, b, …)`.
    Least,
    /// `COALESCE(a, b, …)`.
    Coalesce,
    /// `NULLIF(a, b)`.
    NullIf,
    /// `FORMAT_TIMESTAMP(ts, '%Y-%m-%d')` (strftime patterns).
    FormatTimestamp,
    /// `TO_TIMESTAMP(text)`.
    ToTimestamp,
    /// `UNIX_TIMESTAMP(ts)`: seconds since the epoch.
    UnixTimestamp,
    /// `FROM_UNIXTIME(seconds)`.
    FromUnixtime,
    /// `DATE_TRUNC('hour', ts)`.
    DateTrunc,
    /// `EXTRACT(HOUR FROM ts)` and `HOUR(ts)`-style parts.
    Extract(DatePart),
    /// `NOW()`: the wall clock (not deterministic).
    Now,
    /// `JSON_VALUE(x, '$.a.b')`.
    JsonValue,
}

/// A part of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePart {
    /// Year.
    Year,
    /// Month (1–12).
    Month,
    /// Day of month.
    Day,
    /// Hour (0–23).
    Hour,
    /// Minute.
    Minute,
    /// Second.
    Second,
    /// Day of week (1 = Monday … 7 = Sunday).
    DayOfWeek,
    /// Seconds since the epoch.
    Epoch,
}

/// A column in scope.
#[derive(Debug, Clone)]
pub struct ScopeColumn {
    /// The source's alias or name (lower case).
    pub qualifier: String,
    /// The column (lower case).
    pub name: String,
    /// Its type.
    pub ty: SqlType,
}

/// What names an expression may use.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Columns, by position in the row.
    pub columns: Vec<ScopeColumn>,
    /// Whether `window_start` and `window_end` exist.
    pub windowed: bool,
}

/// Group keys and aggregate calls an aggregate row's expressions refer to.
#[derive(Debug, Clone, Default)]
pub struct AggScope {
    /// The canonical text of each group key expression.
    pub keys: Vec<String>,
    /// The canonical text of each aggregate call.
    pub calls: Vec<String>,
}

/// An expression's canonical text, for matching a SELECT item to a GROUP BY key.
pub fn canonical(e: &SqlExpr) -> String {
    e.to_string()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a call is one of the aggregate functions.
pub fn is_aggregate(name: &str) -> bool {
    matches!(
        name,
        "COUNT" | "SUM" | "AVG" | "MIN" | "MAX" | "EARLIEST_BY_OFFSET" | "LATEST_BY_OFFSET"
    )
}

/// The upper-case name of a function call.
pub fn function_name(f: &ast::Function) -> String {
    f.name.to_string().to_ascii_uppercase()
}

/// The plain argument expressions of a call (`COUNT(*)` has none).
pub fn function_args(f: &ast::Function) -> Result<Vec<&SqlExpr>, String> {
    match &f.args {
        ast::FunctionArguments::None => Ok(Vec::new()),
        ast::FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(Ok(e)),
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) => None,
                other => Some(Err(format!("unsupported argument {other}"))),
            })
            .collect(),
        ast::FunctionArguments::Subquery(_) => Err("subqueries are not supported".into()),
    }
}

impl Scope {
    fn resolve(&self, parts: &[String]) -> Result<Expr, String> {
        let first = &parts[0];
        // `alias.column[.field…]`
        if parts.len() > 1
            && let Some(i) = self.find(Some(first), &parts[1])?
        {
            return Ok(with_path(Expr::Column(i), &parts[2..]));
        }
        match first.as_str() {
            "window_start" if self.windowed => return Ok(with_path(Expr::WindowStart, &parts[1..])),
            "window_end" if self.windowed => return Ok(with_path(Expr::WindowEnd, &parts[1..])),
            "rowtime" => return Ok(Expr::RowTime),
            _ => {}
        }
        // `column[.field…]`
        match self.find(None, first)? {
            Some(i) => Ok(with_path(Expr::Column(i), &parts[1..])),
            None => Err(format!("unknown column '{}'", parts.join("."))),
        }
    }

    fn find(&self, qualifier: Option<&String>, name: &str) -> Result<Option<usize>, String> {
        let hits: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name == name && qualifier.is_none_or(|q| &c.qualifier == q))
            .map(|(i, _)| i)
            .collect();
        match hits.len() {
            0 => Ok(None),
            1 => Ok(Some(hits[0])),
            _ => Err(format!("column '{name}' is ambiguous: qualify it with its source")),
        }
    }
}

fn with_path(base: Expr, rest: &[String]) -> Expr {
    if rest.is_empty() {
        base
    } else {
        Expr::Field(Box::new(base), rest.iter().map(|p| PathPart::Name(p.clone())).collect())
    }
}

/// Compiles an expression. With `agg`, group keys and aggregate calls become references to the
/// aggregate row, and any other column is an error.
pub fn compile(e: &SqlExpr, scope: &Scope, agg: Option<&AggScope>) -> Result<Expr, String> {
    if let Some(a) = agg {
        let text = canonical(e);
        if let Some(i) = a.keys.iter().position(|k| *k == text) {
            return Ok(Expr::Key(i));
        }
        if let SqlExpr::Function(f) = e
            && is_aggregate(&function_name(f))
        {
            let i = a.calls.iter().position(|k| *k == text).ok_or("aggregate not planned")?;
            return Ok(Expr::Agg(i));
        }
    }
    let c = |x: &SqlExpr| compile(x, scope, agg).map(Box::new);
    Ok(match e {
        SqlExpr::Identifier(i) => column_ref(&[i.value.to_lowercase()], scope, agg)?,
        SqlExpr::CompoundIdentifier(ids) => {
            let parts: Vec<String> = ids.iter().map(|i| i.value.to_lowercase()).collect();
            column_ref(&parts, scope, agg)?
        }
        SqlExpr::CompoundFieldAccess { root, access_chain } => {
            let mut base = compile(root, scope, agg)?;
            let mut path = Vec::new();
            for a in access_chain {
                match a {
                    ast::AccessExpr::Dot(SqlExpr::Identifier(i)) => path.push(PathPart::Name(i.value.clone())),
                    ast::AccessExpr::Subscript(ast::Subscript::Index { index }) => path.push(subscript(index)?),
                    other => return Err(format!("unsupported field access {other}")),
                }
            }
            if let Expr::Field(b, p) = base {
                let mut p = p;
                p.extend(path);
                base = Expr::Field(b, p);
                return Ok(base);
            }
            Expr::Field(Box::new(base), path)
        }
        SqlExpr::Value(v) => Expr::Literal(literal(&v.value)?),
        SqlExpr::Nested(x) => compile(x, scope, agg)?,
        SqlExpr::BinaryOp { left, op, right } => match op {
            BinaryOperator::Arrow | BinaryOperator::LongArrow => {
                let base = compile(left, scope, agg)?;
                let part = subscript(right)?;
                match base {
                    Expr::Field(b, mut p) => {
                        p.push(part);
                        Expr::Field(b, p)
                    }
                    b => Expr::Field(Box::new(b), vec![part]),
                }
            }
            op => Expr::Binary(binary_op(op)?, c(left)?, c(right)?),
        },
        SqlExpr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => Expr::Not(c(expr)?),
            UnaryOperator::Minus => Expr::Neg(c(expr)?),
            UnaryOperator::Plus => compile(expr, scope, agg)?,
            other => return Err(format!("unsupported operator {other}")),
        },
        SqlExpr::IsNull(x) => Expr::IsNull(c(x)?, false),
        SqlExpr::IsNotNull(x) => Expr::IsNull(c(x)?, true),
        SqlExpr::IsTrue(x) => Expr::Binary(BinaryOp::Eq, c(x)?, Box::new(Expr::Literal(Datum::Bool(true)))),
        SqlExpr::IsFalse(x) => Expr::Binary(BinaryOp::Eq, c(x)?, Box::new(Expr::Literal(Datum::Bool(false)))),
        SqlExpr::In {
            expr,
            target: ast::InTarget::List(list),
            negated,
            ..
        } => Expr::InList(
            c(expr)?,
            list.iter().map(|x| compile(x, scope, agg)).collect::<Result<_, _>>()?,
            *negated,
        ),
        SqlExpr::Between {
            expr,
            negated,
            low,
            high,
        } => Expr::Between(c(expr)?, c(low)?, c(high)?, *negated),
        SqlExpr::Like {
            negated, expr, pattern, ..
        } => Expr::Like(c(expr)?, like_regex(pattern, false)?, *negated),
        SqlExpr::ILike {
            negated, expr, pattern, ..
        } => Expr::Like(c(expr)?, like_regex(pattern, true)?, *negated),
        SqlExpr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => Expr::Case(
            operand.as_deref().map(c).transpose()?,
            conditions
                .iter()
                .map(|w| Ok((compile(&w.condition, scope, agg)?, compile(&w.result, scope, agg)?)))
                .collect::<Result<_, String>>()?,
            else_result.as_deref().map(c).transpose()?,
        ),
        SqlExpr::Cast { expr, data_type, .. } => Expr::Cast(c(expr)?, super::sql::sql_type(data_type)?),
        SqlExpr::Extract { field, expr, .. } => Expr::Call(
            Func::Extract(date_part(&field.to_string())?),
            vec![compile(expr, scope, agg)?],
        ),
        SqlExpr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![compile(expr, scope, agg)?];
            args.push(match substring_from {
                Some(f) => compile(f, scope, agg)?,
                None => Expr::Literal(Datum::Int(1)),
            });
            if let Some(f) = substring_for {
                args.push(compile(f, scope, agg)?);
            }
            Expr::Call(Func::Substring, args)
        }
        SqlExpr::Trim { expr, .. } => Expr::Call(Func::Trim, vec![compile(expr, scope, agg)?]),
        SqlExpr::Ceil { expr, .. } => Expr::Call(Func::Ceil, vec![compile(expr, scope, agg)?]),
        SqlExpr::Floor { expr, .. } => Expr::Call(Func::Floor, vec![compile(expr, scope, agg)?]),
        SqlExpr::Function(f) => call(f, scope, agg)?,
        SqlExpr::TypedString(t) => {
            let text = match &t.value.value {
                ast::Value::SingleQuotedString(s) => s.clone(),
                other => other.to_string(),
            };
            let ty = super::sql::sql_type(&t.data_type)?;
            Expr::Literal(Datum::from_json(&serde_json::Value::String(text), ty)?)
        }
        SqlExpr::Interval(iv) => Expr::Literal(Datum::Int(super::sql::interval_ms(iv)?)),
        other => return Err(format!("unsupported expression {other}")),
    })
}

fn column_ref(parts: &[String], scope: &Scope, agg: Option<&AggScope>) -> Result<Expr, String> {
    let e = scope.resolve(parts)?;
    if agg.is_some() && !matches!(e, Expr::WindowStart | Expr::WindowEnd) {
        return Err(format!(
            "column '{}' must be in GROUP BY or used in an aggregate",
            parts.join(".")
        ));
    }
    Ok(e)
}

fn subscript(e: &SqlExpr) -> Result<PathPart, String> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => Ok(PathPart::Name(s.clone())),
            ast::Value::Number(n, _) => n.parse().map(PathPart::Index).map_err(|_| format!("bad index {n}")),
            other => Err(format!("unsupported field name {other}")),
        },
        SqlExpr::Identifier(i) => Ok(PathPart::Name(i.value.clone())),
        other => Err(format!("field names must be constants, not {other}")),
    }
}

fn literal(v: &ast::Value) -> Result<Datum, String> {
    Ok(match v {
        ast::Value::Number(n, _) => match n.parse::<i64>() {
            Ok(i) => Datum::Int(i),
            Err(_) => Datum::Decimal(n.parse::<Decimal>().map_err(|_| format!("bad number {n}"))?),
        },
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => Datum::Text(s.clone()),
        ast::Value::Boolean(b) => Datum::Bool(*b),
        ast::Value::Null => Datum::Null,
        other => return Err(format!("unsupported literal {other}")),
    })
}

fn binary_op(op: &BinaryOperator) -> Result<BinaryOp, String> {
    Ok(match op {
        BinaryOperator::Plus => BinaryOp::Add,
        BinaryOperator::Minus => BinaryOp::Sub,
        BinaryOperator::Multiply => BinaryOp::Mul,
        BinaryOperator::Divide => BinaryOp::Div,
        BinaryOperator::Modulo => BinaryOp::Mod,
        BinaryOperator::Eq => BinaryOp::Eq,
        BinaryOperator::NotEq => BinaryOp::NotEq,
        BinaryOperator::Lt => BinaryOp::Lt,
        BinaryOperator::LtEq => BinaryOp::LtEq,
        BinaryOperator::Gt => BinaryOp::Gt,
        BinaryOperator::GtEq => BinaryOp::GtEq,
        BinaryOperator::And => BinaryOp::And,
        BinaryOperator::Or => BinaryOp::Or,
        BinaryOperator::StringConcat => BinaryOp::Concat,
        other => return Err(format!("unsupported operator {other}")),
    })
}

fn like_regex(pattern: &SqlExpr, case_insensitive: bool) -> Result<regex::Regex, String> {
    let SqlExpr::Value(v) = pattern else {
        return Err("LIKE patterns must be constants".into());
    };
    let ast::Value::SingleQuotedString(p) = &v.value else {
        return Err("LIKE patterns are text".into());
    };
    let mut re = String::from(if case_insensitive { "(?is)^" } else { "(?s)^" });
    for ch in p.chars() {
        match ch {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| e.to_string())
}

fn date_part(name: &str) -> Result<DatePart, String> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "YEAR" | "YEARS" => DatePart::Year,
        "MONTH" | "MONTHS" => DatePart::Month,
        "DAY" | "DAYS" | "DAYOFMONTH" => DatePart::Day,
        "HOUR" | "HOURS" => DatePart::Hour,
        "MINUTE" | "MINUTES" => DatePart::Minute,
        "SECOND" | "SECONDS" => DatePart::Second,
        "DOW" | "DAYOFWEEK" | "ISODOW" => DatePart::DayOfWeek,
        "EPOCH" => DatePart::Epoch,
        other => return Err(format!("unsupported date part {other}")),
    })
}

fn call(f: &ast::Function, scope: &Scope, agg: Option<&AggScope>) -> Result<Expr, String> {
    let name = function_name(f);
    // `user`, `current_user`… parse as niladic functions; a column of that name is meant.
    if matches!(f.args, ast::FunctionArguments::None) && !matches!(name.as_str(), "NOW" | "CURRENT_TIMESTAMP") {
        return column_ref(&[name.to_lowercase()], scope, agg);
    }
    if is_aggregate(&name) {
        return Err(format!(
            "{name} is an aggregate: use it with GROUP BY (or over the whole stream)"
        ));
    }
    let args: Vec<Expr> = function_args(f)?
        .into_iter()
        .map(|a| compile(a, scope, agg))
        .collect::<Result<_, _>>()?;
    let func = match name.as_str() {
        "UPPER" | "UCASE" => Func::Upper,
        "LOWER" | "LCASE" => Func::Lower,
        "TRIM" => Func::Trim,
        "LTRIM" => Func::Ltrim,
        "RTRIM" => Func::Rtrim,
        "LENGTH" | "LEN" | "CHAR_LENGTH" => Func::Length,
        "SUBSTRING" | "SUBSTR" => Func::Substring,
        "CONCAT" => Func::Concat,
        "REPLACE" => Func::Replace,
        "LPAD" => Func::Lpad,
        "RPAD" => Func::Rpad,
        "ABS" => Func::Abs,
        "ROUND" => Func::Round,
        "FLOOR" => Func::Floor,
        "CEIL" | "CEILING" => Func::Ceil,
        "SQRT" => Func::Sqrt,
        "POWER" | "POW" => Func::Power,
        "LN" => Func::Ln,
        "EXP" => Func::Exp,
        "GREATEST" => Func::Greatest,
        "LEAST" => Func::Least,
        "COALESCE" | "IFNULL" => Func::Coalesce,
        "NULLIF" => Func::NullIf,
        "FORMAT_TIMESTAMP" | "TIMESTAMPTOSTRING" | "DATE_FORMAT" => Func::FormatTimestamp,
        "TO_TIMESTAMP" | "STRINGTOTIMESTAMP" => Func::ToTimestamp,
        "UNIX_TIMESTAMP" => Func::UnixTimestamp,
        "FROM_UNIXTIME" => Func::FromUnixtime,
        "DATE_TRUNC" => Func::DateTrunc,
        "YEAR" | "MONTH" | "DAY" | "HOUR" | "MINUTE" | "SECOND" | "DAYOFWEEK" => Func::Extract(date_part(&name)?),
        "NOW" | "CURRENT_TIMESTAMP" => Func::Now,
        "JSON_VALUE" | "JSON_EXTRACT" | "EXTRACTJSONFIELD" => Func::JsonValue,
        other => return Err(format!("unknown function {other}")),
    };
    check_arity(func, args.len())?;
    Ok(Expr::Call(func, args))
}

fn check_arity(f: Func, n: usize) -> Result<(), String> {
    let (lo, hi) = match f {
        Func::Now => (0, 0),
        Func::Upper
        | Func::Lower
        | Func::Trim
        | Func::Ltrim
        | Func::Rtrim
        | Func::Length
        | Func::Abs
        | Func::Floor
        | Func::Ceil
        | Func::Sqrt
        | Func::Ln
        | Func::Exp
        | Func::ToTimestamp
        | Func::FromUnixtime
        | Func::Extract(_) => (1, 1),
        Func::UnixTimestamp => (0, 1),
        Func::Round => (1, 2),
        Func::Substring => (2, 3),
        Func::Power | Func::NullIf | Func::DateTrunc | Func::JsonValue | Func::FormatTimestamp => (2, 2),
        Func::Replace | Func::Lpad | Func::Rpad => (3, 3),
        Func::Concat | Func::Greatest | Func::Least | Func::Coalesce => (1, usize::MAX),
    };
    if n < lo || n > hi {
        return Err(format!("{f:?} takes {lo} to {hi} arguments, not {n}").to_uppercase());
    }
    Ok(())
}

/// What an expression is evaluated over.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The row.
    pub row: &'a [Datum],
    /// The record timestamp.
    pub rowtime: i64,
    /// The window, when there is one.
    pub window: Option<(i64, i64)>,
    /// Group keys of an aggregate row.
    pub keys: &'a [Datum],
    /// Aggregate results of an aggregate row.
    pub aggs: &'a [Datum],
}

impl<'a> Ctx<'a> {
    /// The context of a plain row (no window, no aggregate).
    pub fn row(row: &'a [Datum], rowtime: i64) -> Self {
        Self {
            row,
            rowtime,
            window: None,
            keys: &[],
            aggs: &[],
        }
    }
}

impl Expr {
    /// Like [`Self::eval`], but borrowing the values of columns, literals, group keys and
    /// aggregates rather than copying them (comparisons and output need no copy).
    pub fn eval_ref<'s>(&'s self, cx: &Ctx<'s>) -> Result<Cow<'s, Datum>, String> {
        let at = |values: &'s [Datum], i: usize| values.get(i).map_or(Cow::Owned(Datum::Null), Cow::Borrowed);
        Ok(match self {
            Self::Column(i) => at(cx.row, *i),
            Self::Literal(d) => Cow::Borrowed(d),
            Self::Key(i) => at(cx.keys, *i),
            Self::Agg(i) => at(cx.aggs, *i),
            other => Cow::Owned(other.eval(cx)?),
        })
    }

    /// Evaluates the expression.
    pub fn eval(&self, cx: &Ctx<'_>) -> Result<Datum, String> {
        Ok(match self {
            Self::Column(i) => cx.row.get(*i).cloned().unwrap_or(Datum::Null),
            Self::Literal(d) => d.clone(),
            Self::RowTime => Datum::Timestamp(cx.rowtime),
            Self::WindowStart => cx.window.map_or(Datum::Null, |w| Datum::Timestamp(w.0)),
            Self::WindowEnd => cx.window.map_or(Datum::Null, |w| Datum::Timestamp(w.1)),
            Self::Key(i) => cx.keys.get(*i).cloned().unwrap_or(Datum::Null),
            Self::Agg(i) => cx.aggs.get(*i).cloned().unwrap_or(Datum::Null),
            Self::Binary(op, l, r) => binary(*op, l, r, cx)?,
            Self::Not(x) => match x.eval(cx)? {
                Datum::Bool(b) => Datum::Bool(!b),
                _ => Datum::Null,
            },
            Self::Neg(x) => match x.eval(cx)? {
                Datum::Int(i) => Datum::Int(-i),
                Datum::Double(d) => Datum::Double(-d),
                Datum::Decimal(d) => Datum::Decimal(-d),
                Datum::Null => Datum::Null,
                other => return Err(format!("cannot negate {other}")),
            },
            Self::IsNull(x, negated) => Datum::Bool(x.eval(cx)?.is_null() != *negated),
            Self::InList(x, list, negated) => {
                let v = x.eval(cx)?;
                if v.is_null() {
                    return Ok(Datum::Null);
                }
                let mut found = false;
                for item in list {
                    if v.compare(&item.eval(cx)?) == Some(Ordering::Equal) {
                        found = true;
                        break;
                    }
                }
                Datum::Bool(found != *negated)
            }
            Self::Between(x, lo, hi, negated) => {
                let v = x.eval(cx)?;
                match (v.compare(&lo.eval(cx)?), v.compare(&hi.eval(cx)?)) {
                    (Some(a), Some(b)) => Datum::Bool((a != Ordering::Less && b != Ordering::Greater) != *negated),
                    _ => Datum::Null,
                }
            }
            Self::Like(x, re, negated) => match x.eval(cx)? {
                Datum::Null => Datum::Null,
                v => Datum::Bool(re.is_match(&v.to_string()) != *negated),
            },
            Self::Case(operand, whens, otherwise) => case(operand.as_deref(), whens, otherwise.as_deref(), cx)?,
            Self::Cast(x, ty) => cast(x.eval(cx)?, *ty)?,
            Self::Call(f, args) => {
                let vals: Vec<Datum> = args.iter().map(|a| a.eval(cx)).collect::<Result<_, _>>()?;
                super::functions::apply(*f, &vals)?
            }
            Self::Field(x, path) => field(&x.eval(cx)?, path),
        })
    }
}

fn case(
    operand: Option<&Expr>,
    whens: &[(Expr, Expr)],
    otherwise: Option<&Expr>,
    cx: &Ctx<'_>,
) -> Result<Datum, String> {
    let subject = operand.map(|o| o.eval(cx)).transpose()?;
    for (when, then) in whens {
        let w = when.eval(cx)?;
        let hit = match &subject {
            Some(s) => s.compare(&w) == Some(Ordering::Equal),
            None => w.is_true(),
        };
        if hit {
            return then.eval(cx);
        }
    }
    otherwise.map_or(Ok(Datum::Null), |o| o.eval(cx))
}

fn field(v: &Datum, path: &[PathPart]) -> Datum {
    let Datum::Json(mut j) = v.clone() else {
        return match (v, path.first()) {
            (Datum::Text(s), _) => {
                serde_json::from_str::<serde_json::Value>(s).map_or(Datum::Null, |j| field(&Datum::Json(j), path))
            }
            _ => Datum::Null,
        };
    };
    for p in path {
        j = match p {
            PathPart::Name(n) => j.get(n).cloned().unwrap_or(serde_json::Value::Null),
            PathPart::Index(i) => j.get(i).cloned().unwrap_or(serde_json::Value::Null),
        };
    }
    Datum::from_untyped(&j)
}

fn binary<'s>(op: BinaryOp, l: &'s Expr, r: &'s Expr, cx: &Ctx<'s>) -> Result<Datum, String> {
    if matches!(op, BinaryOp::And | BinaryOp::Or) {
        let a = l.eval(cx)?;
        // Short-circuit where SQL's three-valued logic allows.
        match (op, &a) {
            (BinaryOp::And, Datum::Bool(false)) => return Ok(Datum::Bool(false)),
            (BinaryOp::Or, Datum::Bool(true)) => return Ok(Datum::Bool(true)),
            _ => {}
        }
        let b = r.eval(cx)?;
        return Ok(match (op, &a, &b) {
            (BinaryOp::And, _, Datum::Bool(false)) => Datum::Bool(false),
            (BinaryOp::And, Datum::Bool(true), Datum::Bool(true)) => Datum::Bool(true),
            (BinaryOp::Or, _, Datum::Bool(true)) => Datum::Bool(true),
            (BinaryOp::Or, Datum::Bool(false), Datum::Bool(false)) => Datum::Bool(false),
            _ => Datum::Null,
        });
    }
    let (a, b) = (l.eval_ref(cx)?, r.eval_ref(cx)?);
    let (a, b) = (a.as_ref(), b.as_ref());
    if a.is_null() || b.is_null() {
        return Ok(Datum::Null);
    }
    let cmp = |want: fn(Ordering) -> bool| Ok(a.compare(b).map_or(Datum::Null, |o| Datum::Bool(want(o))));
    match op {
        BinaryOp::Eq => cmp(|o| o == Ordering::Equal),
        BinaryOp::NotEq => cmp(|o| o != Ordering::Equal),
        BinaryOp::Lt => cmp(|o| o == Ordering::Less),
        BinaryOp::LtEq => cmp(|o| o != Ordering::Greater),
        BinaryOp::Gt => cmp(|o| o == Ordering::Greater),
        BinaryOp::GtEq => cmp(|o| o != Ordering::Less),
        BinaryOp::Concat => Ok(Datum::Text(format!("{a}{b}"))),
        _ => arithmetic(op, a, b),
    }
}

/// Arithmetic with SQL's promotion: integers stay integers, decimals stay exact, doubles win.
/// Division by zero is NULL.
pub fn arithmetic(op: BinaryOp, a: &Datum, b: &Datum) -> Result<Datum, String> {
    use Datum::*;
    let bad = || format!("cannot apply {op:?} to {a} and {b}");
    Ok(match (a, b) {
        (Int(x), Int(y)) => match op {
            BinaryOp::Add => Int(x.checked_add(*y).ok_or("integer overflow")?),
            BinaryOp::Sub => Int(x.checked_sub(*y).ok_or("integer overflow")?),
            BinaryOp::Mul => Int(x.checked_mul(*y).ok_or("integer overflow")?),
            BinaryOp::Div if *y == 0 => Null,
            BinaryOp::Div => Int(x / y),
            BinaryOp::Mod if *y == 0 => Null,
            BinaryOp::Mod => Int(x % y),
            _ => return Err(bad()),
        },
        (Timestamp(x), Int(y)) | (Int(x), Timestamp(y)) if matches!(op, BinaryOp::Add) => Timestamp(x + y),
        (Timestamp(x), Int(y)) if matches!(op, BinaryOp::Sub) => Timestamp(x - y),
        (Timestamp(x), Timestamp(y)) if matches!(op, BinaryOp::Sub) => Int(x - y),
        (Double(_), _) | (_, Double(_)) => {
            let (x, y) = (a.as_f64().ok_or_else(bad)?, b.as_f64().ok_or_else(bad)?);
            match op {
                BinaryOp::Add => Double(x + y),
                BinaryOp::Sub => Double(x - y),
                BinaryOp::Mul => Double(x * y),
                BinaryOp::Div if y == 0.0 => Null,
                BinaryOp::Div => Double(x / y),
                BinaryOp::Mod if y == 0.0 => Null,
                BinaryOp::Mod => Double(x % y),
                _ => return Err(bad()),
            }
        }
        _ => {
            let (x, y) = (decimal_of(a).ok_or_else(bad)?, decimal_of(b).ok_or_else(bad)?);
            match op {
                BinaryOp::Add => Decimal(x.checked_add(y).ok_or("decimal overflow")?),
                BinaryOp::Sub => Decimal(x.checked_sub(y).ok_or("decimal overflow")?),
                BinaryOp::Mul => Decimal(x.checked_mul(y).ok_or("decimal overflow")?),
                BinaryOp::Div if y.is_zero() => Null,
                BinaryOp::Div => Decimal(x.checked_div(y).ok_or("decimal overflow")?),
                BinaryOp::Mod if y.is_zero() => Null,
                BinaryOp::Mod => Decimal(x % y),
                _ => return Err(bad()),
            }
        }
    })
}

/// A value as an exact decimal, if it is a number.
pub fn decimal_of(d: &Datum) -> Option<Decimal> {
    match d {
        Datum::Int(i) => Some(Decimal::from(*i)),
        Datum::Decimal(x) => Some(*x),
        Datum::Double(f) => Decimal::from_f64(*f),
        Datum::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `CAST(v AS ty)`.
pub fn cast(v: Datum, ty: SqlType) -> Result<Datum, String> {
    if v.is_null() {
        return Ok(Datum::Null);
    }
    let fail = |v: &Datum| format!("cannot cast {v} to {ty}");
    Ok(match ty {
        SqlType::Text => match v {
            Datum::Timestamp(t) => Datum::Text(format_timestamp(t)),
            Datum::Json(j) => Datum::Text(j.to_string()),
            other => Datum::Text(other.to_string()),
        },
        SqlType::Int | SqlType::Bigint => Datum::Int(v.as_i64().ok_or_else(|| fail(&v))?),
        SqlType::Double => match &v {
            Datum::Text(s) => Datum::Double(s.trim().parse().map_err(|_| fail(&v))?),
            _ => Datum::Double(v.as_f64().ok_or_else(|| fail(&v))?),
        },
        SqlType::Decimal { scale, .. } => Datum::Decimal(
            decimal_of(&v)
                .ok_or_else(|| fail(&v))?
                .round_dp_with_strategy(u32::from(scale), rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        ),
        SqlType::Boolean => match &v {
            Datum::Bool(b) => Datum::Bool(*b),
            Datum::Text(s) if s.eq_ignore_ascii_case("true") => Datum::Bool(true),
            Datum::Text(s) if s.eq_ignore_ascii_case("false") => Datum::Bool(false),
            Datum::Int(i) => Datum::Bool(*i != 0),
            _ => return Err(fail(&v)),
        },
        SqlType::Timestamp => match &v {
            Datum::Text(s) => Datum::Timestamp(parse_timestamp(s).ok_or_else(|| fail(&v))?),
            _ => Datum::Timestamp(v.as_i64().ok_or_else(|| fail(&v))?),
        },
        SqlType::Json => Datum::Json(v.to_json()),
    })
}
