//! Planning: a `SELECT` against the catalog becomes a [`Plan`] — the input stream (and the table
//! it joins), the window, the filter, the grouping with its aggregate calls, and the output
//! columns as compiled expressions — checked for everything that can be known before a record
//! arrives.

use sqlparser::ast::{
    self, Expr as SqlExpr, GroupByExpr, JoinConstraint, JoinOperator, SelectItem, SetExpr, TableFactor,
};

use super::catalog::Source;
use super::expr::{self, AggScope, Expr, Scope, ScopeColumn, canonical, function_args, function_name, is_aggregate};
use super::sql::{Emit, Kind, interval_ms, object_name};
use super::value::SqlType;

/// A window as a table function of the `FROM` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `TUMBLE(src, ts, size)`.
    Tumble {
        /// Size, ms.
        size: i64,
    },
    /// `HOP(src, ts, slide, size)`.
    Hop {
        /// Slide, ms.
        slide: i64,
        /// Size, ms.
        size: i64,
    },
    /// `SESSION(src, ts, gap)`.
    Session {
        /// Gap, ms.
        gap: i64,
    },
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `COUNT(*)`, `COUNT(x)`, `COUNT(DISTINCT x)`.
    Count,
    /// `SUM(x)`.
    Sum,
    /// `AVG(x)`.
    Avg,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `EARLIEST_BY_OFFSET(x)`: the first value.
    Earliest,
    /// `LATEST_BY_OFFSET(x)`: the last value.
    Latest,
}

/// One aggregate call.
#[derive(Debug, Clone)]
pub struct AggCall {
    /// The function.
    pub func: AggFunc,
    /// `DISTINCT`.
    pub distinct: bool,
    /// Its argument (`None` for `COUNT(*)`).
    pub arg: Option<Expr>,
    /// Its result type.
    pub ty: SqlType,
}

/// The grouping of an aggregate query.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// Group key expressions (over the input row).
    pub keys: Vec<Expr>,
    /// Their names in the output key.
    pub key_names: Vec<String>,
    /// The aggregate calls.
    pub calls: Vec<AggCall>,
    /// `HAVING`, over the aggregate row.
    pub having: Option<Expr>,
}

/// The table side of a stream–table join.
#[derive(Debug, Clone)]
pub struct Join {
    /// The table.
    pub table: Source,
    /// `LEFT JOIN` (else inner).
    pub left: bool,
    /// For each of the table's key columns, the stream-side expression it must equal.
    pub keys: Vec<Expr>,
    /// Where the table's columns start in the joined row.
    pub offset: usize,
}

/// An output column.
#[derive(Debug, Clone)]
pub struct OutputColumn {
    /// Its name.
    pub name: String,
    /// Its expression (over the input row, or the aggregate row).
    pub expr: Expr,
    /// Its type, as far as it is known.
    pub ty: SqlType,
}

/// A planned query.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The input stream (or table, for a pull query).
    pub input: Source,
    /// The event-time column of the input (`None`: the record timestamp).
    pub time: Option<usize>,
    /// The window.
    pub window: Option<WindowKind>,
    /// The joined table.
    pub join: Option<Join>,
    /// `WHERE`.
    pub filter: Option<Expr>,
    /// The grouping, for aggregate queries.
    pub aggregate: Option<Aggregate>,
    /// The output columns.
    pub columns: Vec<OutputColumn>,
    /// When aggregates emit.
    pub emit: Emit,
    /// `LIMIT`.
    pub limit: Option<u64>,
    /// The names in scope, for `EXPLAIN`.
    pub scope: Vec<String>,
}

impl Plan {
    /// Whether results are rows of a table (aggregates) rather than events.
    pub fn is_table(&self) -> bool {
        self.aggregate.is_some()
    }
}

/// Looks a source up by name.
pub trait Catalog {
    /// The stream or table called `name`.
    fn source(&self, name: &str) -> Option<Source>;
}

/// Plans a `SELECT`.
pub fn plan(query: &ast::Query, emit: Option<Emit>, catalog: &dyn Catalog) -> Result<Plan, String> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err("only SELECT … FROM … queries are supported (no UNION or VALUES)".into());
    };
    if query.order_by.is_some() {
        return Err("ORDER BY is not supported on streams".into());
    }
    if select.from.len() != 1 {
        return Err("select FROM one stream (join a table with JOIN … ON)".into());
    }
    let from = &select.from[0];
    let (input, alias, window, time_col) = relation(&from.relation, catalog)?;
    let mut scope = Scope {
        columns: columns_of(&input, &alias),
        windowed: window.is_some(),
    };
    let time = match time_col {
        Some(c) if c == "rowtime" => None,
        Some(c) => Some(
            input
                .column(&c)
                .ok_or_else(|| format!("window time column '{c}' is not a column of {}", input.name))?,
        ),
        None => input.timestamp.as_deref().and_then(|t| input.column(t)),
    };
    let join = match from.joins.as_slice() {
        [] => None,
        [j] => Some(join(j, &input, &mut scope, catalog)?),
        _ => return Err("one join per query (a stream with one table)".into()),
    };
    let filter = select
        .selection
        .as_ref()
        .map(|w| expr::compile(w, &scope, None))
        .transpose()?;
    let group_exprs: Vec<&SqlExpr> = match &select.group_by {
        GroupByExpr::Expressions(e, _) => e.iter().collect(),
        GroupByExpr::All(_) => return Err("GROUP BY ALL is not supported".into()),
    };
    let has_aggs =
        select.projection.iter().any(item_has_aggregate) || select.having.as_ref().is_some_and(has_aggregate);
    let limit = limit_of(query)?;
    let (aggregate, columns) = if !group_exprs.is_empty() || has_aggs {
        grouped(select, &group_exprs, &scope)?
    } else {
        (None, stateless_columns(select, &scope, &input, join.as_ref())?)
    };
    if aggregate.is_none() && window.is_some() {
        return Err("a windowed query needs GROUP BY (a window alone is a valid grouping) or an aggregate".into());
    }
    if aggregate.is_none() && emit == Some(Emit::Final) {
        return Err("EMIT FINAL needs an aggregate".into());
    }
    Ok(Plan {
        input,
        time,
        window,
        join,
        filter,
        aggregate,
        columns,
        emit: emit.unwrap_or(Emit::Changes),
        limit,
        scope: scope
            .columns
            .iter()
            .map(|c| format!("{}.{}", c.qualifier, c.name))
            .collect(),
    })
}

fn limit_of(query: &ast::Query) -> Result<Option<u64>, String> {
    match &query.limit_clause {
        None => Ok(None),
        Some(ast::LimitClause::LimitOffset {
            limit: Some(e),
            offset: None,
            ..
        }) => match e {
            SqlExpr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => n.parse().map(Some).map_err(|_| format!("bad LIMIT {n}")),
                other => Err(format!("LIMIT takes a number, not {other}")),
            },
            other => Err(format!("LIMIT takes a number, not {other}")),
        },
        Some(_) => Err("only LIMIT n is supported".into()),
    }
}

fn columns_of(s: &Source, alias: &str) -> Vec<ScopeColumn> {
    s.columns
        .iter()
        .map(|c| ScopeColumn {
            qualifier: alias.to_owned(),
            name: c.name.clone(),
            ty: c.ty,
        })
        .collect()
}

type Relation = (Source, String, Option<WindowKind>, Option<String>);

/// The `FROM` relation: a stream, or a window function over one.
fn relation(f: &TableFactor, catalog: &dyn Catalog) -> Result<Relation, String> {
    let TableFactor::Table { name, alias, args, .. } = f else {
        return Err("FROM a stream, a table, or TUMBLE/HOP/SESSION(stream, time_column, …)".into());
    };
    let fname = object_name(name);
    let alias_of = |default: &str| {
        alias
            .as_ref()
            .map_or(default.to_owned(), |a| a.name.value.to_lowercase())
    };
    let Some(args) = args else {
        let s = catalog
            .source(&fname)
            .ok_or_else(|| format!("unknown stream or table '{fname}'"))?;
        let a = alias_of(&s.name);
        return Ok((s, a, None, None));
    };
    let exprs: Vec<&SqlExpr> = args
        .args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
            other => Err(format!("unsupported window argument {other}")),
        })
        .collect::<Result<_, String>>()?;
    let source_name = match exprs.first() {
        Some(SqlExpr::Identifier(i)) => i.value.to_lowercase(),
        _ => {
            return Err(format!(
                "{fname}(stream, time_column, …): the first argument names a stream"
            ));
        }
    };
    let time = match exprs.get(1) {
        Some(SqlExpr::Identifier(i)) => i.value.to_lowercase(),
        _ => {
            return Err(format!(
                "{fname}(stream, time_column, …): the second argument is the time column"
            ));
        }
    };
    let ms = |i: usize| -> Result<i64, String> {
        match exprs.get(i) {
            Some(SqlExpr::Interval(iv)) => interval_ms(iv).and_then(|v| {
                if v > 0 {
                    Ok(v)
                } else {
                    Err("window durations must be positive".into())
                }
            }),
            _ => Err(format!("{fname}: argument {} must be an INTERVAL", i + 1)),
        }
    };
    let kind = match fname.as_str() {
        "tumble" if exprs.len() == 3 => WindowKind::Tumble { size: ms(2)? },
        "hop" if exprs.len() == 4 => {
            let (slide, size) = (ms(2)?, ms(3)?);
            if size % slide != 0 {
                return Err("HOP: the size must be a multiple of the slide".into());
            }
            WindowKind::Hop { slide, size }
        }
        "session" if exprs.len() == 3 => WindowKind::Session { gap: ms(2)? },
        "tumble" | "hop" | "session" => {
            return Err("TUMBLE(src, ts, size), HOP(src, ts, slide, size), SESSION(src, ts, gap)".into());
        }
        other => return Err(format!("unknown table function {other}")),
    };
    let s = catalog
        .source(&source_name)
        .ok_or_else(|| format!("unknown stream '{source_name}'"))?;
    if s.kind != Kind::Stream {
        return Err(format!("windows apply to streams; '{source_name}' is a table"));
    }
    let a = alias_of(&s.name);
    Ok((s, a, Some(kind), Some(time)))
}

fn join(j: &ast::Join, input: &Source, scope: &mut Scope, catalog: &dyn Catalog) -> Result<Join, String> {
    let (left, constraint) = match &j.join_operator {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (false, c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (true, c),
        other => {
            return Err(format!(
                "only [INNER] JOIN and LEFT JOIN with a table are supported, not {other:?}"
            ));
        }
    };
    let (table, alias, window, _) = relation(&j.relation, catalog)?;
    if window.is_some() || table.kind != Kind::Table {
        return Err(format!(
            "a stream joins a TABLE; '{}' is a stream (stream–stream joins come later)",
            table.name
        ));
    }
    if input.kind != Kind::Stream {
        return Err("the left side of a join is a stream".into());
    }
    let pk: Vec<String> = table.key_columns().iter().map(|c| c.name.clone()).collect();
    if pk.is_empty() {
        return Err(format!("table '{}' needs a PRIMARY KEY to be joined", table.name));
    }
    let offset = scope.columns.len();
    scope.columns.extend(columns_of(&table, &alias));
    let JoinConstraint::On(on) = constraint else {
        return Err("join with ON stream.column = table.key_column [AND …]".into());
    };
    let mut pairs: Vec<(String, Expr)> = Vec::new();
    for cond in conjuncts(on) {
        let SqlExpr::BinaryOp {
            left: l,
            op: ast::BinaryOperator::Eq,
            right: r,
        } = cond
        else {
            return Err(format!("join conditions are equalities, not {cond}"));
        };
        let (le, re) = (expr::compile(l, scope, None)?, expr::compile(r, scope, None)?);
        let table_col = |e: &Expr| match e {
            Expr::Column(i) if *i >= offset => Some(scope.columns[*i].name.clone()),
            _ => None,
        };
        let pair = match (table_col(&le), table_col(&re)) {
            (Some(c), None) => (c, re),
            (None, Some(c)) => (c, le),
            _ => {
                return Err(format!(
                    "each join condition equates a stream expression with a column of '{}': {cond}",
                    table.name
                ));
            }
        };
        pairs.push(pair);
    }
    let mut keys = Vec::new();
    for k in &pk {
        let (_, e) = pairs.iter().find(|(c, _)| c == k).ok_or_else(|| {
            format!(
                "the join must cover the primary key of '{}' ({})",
                table.name,
                pk.join(", ")
            )
        })?;
        keys.push(e.clone());
    }
    if pairs.len() != pk.len() {
        return Err(format!(
            "join on the primary key of '{}' ({}) only",
            table.name,
            pk.join(", ")
        ));
    }
    Ok(Join {
        table,
        left,
        keys,
        offset,
    })
}

fn conjuncts(e: &SqlExpr) -> Vec<&SqlExpr> {
    match e {
        SqlExpr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            let mut v = conjuncts(left);
            v.extend(conjuncts(right));
            v
        }
        SqlExpr::Nested(x) => conjuncts(x),
        other => vec![other],
    }
}

fn has_aggregate(e: &SqlExpr) -> bool {
    let mut found = false;
    let _ = sqlparser::ast::visit_expressions(e, |x: &SqlExpr| {
        if let SqlExpr::Function(f) = x
            && is_aggregate(&function_name(f))
        {
            found = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found
}

fn item_has_aggregate(i: &SelectItem) -> bool {
    match i {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => has_aggregate(e),
        _ => false,
    }
}

/// The name of an output column: its alias, or its column name, or its text.
fn item_name(e: &SqlExpr, alias: Option<&ast::Ident>) -> String {
    if let Some(a) = alias {
        return a.value.clone();
    }
    match e {
        SqlExpr::Identifier(i) => i.value.to_lowercase(),
        SqlExpr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.to_lowercase()).unwrap_or_default(),
        other => canonical(other),
    }
}

fn stateless_columns(
    select: &ast::Select,
    scope: &Scope,
    input: &Source,
    join: Option<&Join>,
) -> Result<Vec<OutputColumn>, String> {
    let mut out = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::Wildcard(_) => {
                for (i, c) in scope.columns.iter().enumerate() {
                    out.push(OutputColumn {
                        name: c.name.clone(),
                        expr: Expr::Column(i),
                        ty: c.ty,
                    });
                }
            }
            SelectItem::QualifiedWildcard(kind, _) => {
                let q = kind.to_string().to_lowercase();
                let q = q.trim_end_matches(".*");
                for (i, c) in scope.columns.iter().enumerate().filter(|(_, c)| c.qualifier == q) {
                    out.push(OutputColumn {
                        name: c.name.clone(),
                        expr: Expr::Column(i),
                        ty: c.ty,
                    });
                }
            }
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                let alias = match item {
                    SelectItem::ExprWithAlias { alias, .. } => Some(alias),
                    _ => None,
                };
                let compiled = expr::compile(e, scope, None)?;
                out.push(OutputColumn {
                    name: item_name(e, alias),
                    ty: infer(&compiled, scope, &[], &[]),
                    expr: compiled,
                });
            }
            other => return Err(format!("unsupported select item {other}")),
        }
    }
    let _ = (input, join);
    dedupe(out)
}

fn dedupe(out: Vec<OutputColumn>) -> Result<Vec<OutputColumn>, String> {
    let mut seen = std::collections::BTreeSet::new();
    for c in &out {
        if !seen.insert(c.name.to_lowercase()) {
            return Err(format!(
                "two output columns are called '{}': give one an alias (AS …)",
                c.name
            ));
        }
    }
    Ok(out)
}

fn grouped(
    select: &ast::Select,
    group_exprs: &[&SqlExpr],
    scope: &Scope,
) -> Result<(Option<Aggregate>, Vec<OutputColumn>), String> {
    let is_window_col = |e: &SqlExpr| matches!(e, SqlExpr::Identifier(i) if ["window_start", "window_end"].contains(&i.value.to_lowercase().as_str()));
    let mut agg_scope = AggScope::default();
    let mut keys = Vec::new();
    let mut key_names = Vec::new();
    for g in group_exprs {
        if is_window_col(g) {
            if !scope.windowed {
                return Err("window_start and window_end need a window in FROM".into());
            }
            continue;
        }
        agg_scope.keys.push(canonical(g));
        keys.push(expr::compile(g, scope, None)?);
        key_names.push(item_name(g, None));
    }
    // Every aggregate call in SELECT and HAVING, once each.
    let mut calls = Vec::new();
    let mut visit = |e: &SqlExpr| -> Result<(), String> {
        let mut err = None;
        let _ = sqlparser::ast::visit_expressions(e, |x: &SqlExpr| {
            if let SqlExpr::Function(f) = x
                && is_aggregate(&function_name(f))
            {
                let text = canonical(x);
                if !agg_scope.calls.contains(&text) {
                    match agg_call(f, scope) {
                        Ok(c) => {
                            agg_scope.calls.push(text);
                            calls.push(c);
                        }
                        Err(e) => err = Some(e),
                    }
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        err.map_or(Ok(()), Err)
    };
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            visit(e)?;
        }
    }
    if let Some(h) = &select.having {
        visit(h)?;
    }
    let key_types: Vec<SqlType> = keys.iter().map(|k| infer(k, scope, &[], &[])).collect();
    let call_types: Vec<SqlType> = calls.iter().map(|c| c.ty).collect();
    let mut columns = Vec::new();
    for item in &select.projection {
        let (e, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
            _ => return Err("SELECT * is not allowed with GROUP BY: name the keys and aggregates".into()),
        };
        let compiled = expr::compile(e, scope, Some(&agg_scope))?;
        columns.push(OutputColumn {
            name: item_name(e, alias),
            ty: infer(&compiled, scope, &key_types, &call_types),
            expr: compiled,
        });
    }
    let having = select
        .having
        .as_ref()
        .map(|h| expr::compile(h, scope, Some(&agg_scope)))
        .transpose()?;
    Ok((
        Some(Aggregate {
            keys,
            key_names,
            calls,
            having,
        }),
        dedupe(columns)?,
    ))
}

fn agg_call(f: &ast::Function, scope: &Scope) -> Result<AggCall, String> {
    let name = function_name(f);
    let distinct = matches!(&f.args, ast::FunctionArguments::List(l) if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct)));
    let args = function_args(f)?;
    let func = match name.as_str() {
        "COUNT" => AggFunc::Count,
        "SUM" => AggFunc::Sum,
        "AVG" => AggFunc::Avg,
        "MIN" => AggFunc::Min,
        "MAX" => AggFunc::Max,
        "EARLIEST_BY_OFFSET" => AggFunc::Earliest,
        "LATEST_BY_OFFSET" => AggFunc::Latest,
        other => return Err(format!("unknown aggregate {other}")),
    };
    if distinct && func != AggFunc::Count {
        return Err(format!("DISTINCT is supported with COUNT, not {name}"));
    }
    let arg = match (func, args.as_slice()) {
        (AggFunc::Count, []) => None,
        (_, [a]) => {
            if has_aggregate(a) {
                return Err(format!("{name}: aggregates cannot be nested"));
            }
            Some(expr::compile(a, scope, None)?)
        }
        _ => return Err(format!("{name} takes one argument")),
    };
    let arg_ty = arg.as_ref().map_or(SqlType::Bigint, |a| infer(a, scope, &[], &[]));
    let ty = match func {
        AggFunc::Count => SqlType::Bigint,
        AggFunc::Sum => match arg_ty {
            SqlType::Int | SqlType::Bigint => SqlType::Bigint,
            SqlType::Decimal { scale, .. } => SqlType::Decimal { precision: 38, scale },
            _ => SqlType::Double,
        },
        AggFunc::Avg => match arg_ty {
            SqlType::Decimal { .. } => SqlType::Decimal {
                precision: 38,
                scale: 6,
            },
            _ => SqlType::Double,
        },
        _ => arg_ty,
    };
    Ok(AggCall {
        func,
        distinct,
        arg,
        ty,
    })
}

/// The type of an expression, as far as it can be known before evaluation (`JSON` when not).
pub fn infer(e: &Expr, scope: &Scope, keys: &[SqlType], calls: &[SqlType]) -> SqlType {
    use super::expr::{BinaryOp as B, Func as F};
    let rec = |x: &Expr| infer(x, scope, keys, calls);
    match e {
        Expr::Column(i) => scope.columns.get(*i).map_or(SqlType::Json, |c| c.ty),
        Expr::Key(i) => keys.get(*i).copied().unwrap_or(SqlType::Json),
        Expr::Agg(i) => calls.get(*i).copied().unwrap_or(SqlType::Json),
        Expr::Literal(d) => match d {
            super::value::Datum::Bool(_) => SqlType::Boolean,
            super::value::Datum::Int(_) => SqlType::Bigint,
            super::value::Datum::Double(_) => SqlType::Double,
            super::value::Datum::Decimal(d) => SqlType::Decimal {
                precision: 38,
                scale: d.scale() as u8,
            },
            super::value::Datum::Text(_) => SqlType::Text,
            super::value::Datum::Timestamp(_) => SqlType::Timestamp,
            _ => SqlType::Json,
        },
        Expr::RowTime | Expr::WindowStart | Expr::WindowEnd => SqlType::Timestamp,
        Expr::Binary(op, l, r) => match op {
            B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq | B::And | B::Or => SqlType::Boolean,
            B::Concat => SqlType::Text,
            _ => match (rec(l), rec(r)) {
                (SqlType::Double, _) | (_, SqlType::Double) => SqlType::Double,
                (d @ SqlType::Decimal { .. }, _) | (_, d @ SqlType::Decimal { .. }) => d,
                (SqlType::Timestamp, SqlType::Timestamp) => SqlType::Bigint,
                (SqlType::Timestamp, _) | (_, SqlType::Timestamp) => SqlType::Timestamp,
                (SqlType::Int, SqlType::Int) => SqlType::Int,
                _ => SqlType::Bigint,
            },
        },
        Expr::Not(_) | Expr::IsNull(..) | Expr::InList(..) | Expr::Between(..) | Expr::Like(..) => SqlType::Boolean,
        Expr::Neg(x) => rec(x),
        Expr::Case(_, whens, otherwise) => whens
            .first()
            .map(|(_, t)| rec(t))
            .or_else(|| otherwise.as_deref().map(rec))
            .unwrap_or(SqlType::Json),
        Expr::Cast(_, t) => *t,
        Expr::Field(..) => SqlType::Json,
        Expr::Call(f, args) => match f {
            F::Upper
            | F::Lower
            | F::Trim
            | F::Ltrim
            | F::Rtrim
            | F::Substring
            | F::Concat
            | F::Replace
            | F::Lpad
            | F::Rpad
            | F::FormatTimestamp => SqlType::Text,
            F::Length | F::UnixTimestamp | F::Extract(_) => SqlType::Bigint,
            F::Sqrt | F::Power | F::Ln | F::Exp => SqlType::Double,
            F::ToTimestamp | F::FromUnixtime | F::DateTrunc | F::Now => SqlType::Timestamp,
            F::Abs | F::Round | F::Floor | F::Ceil | F::Greatest | F::Least | F::Coalesce | F::NullIf => {
                args.first().map_or(SqlType::Json, rec)
            }
            F::JsonValue => SqlType::Json,
        },
    }
}

/// The plan in words, for `EXPLAIN`.
pub fn explain(p: &Plan) -> String {
    let mut lines = vec![format!("SOURCE {} (topic {})", p.input.name, p.input.topic)];
    lines.push(match p.time {
        Some(i) => format!("EVENT TIME column {}", p.input.columns[i].name),
        None => "EVENT TIME record timestamp".into(),
    });
    if let Some(j) = &p.join {
        lines.push(format!(
            "{} JOIN TABLE {} (topic {}) ON its key",
            if j.left { "LEFT" } else { "INNER" },
            j.table.name,
            j.table.topic
        ));
    }
    if p.filter.is_some() {
        lines.push("FILTER".into());
    }
    if let Some(w) = p.window {
        lines.push(format!("WINDOW {w:?}"));
    }
    if let Some(a) = &p.aggregate {
        lines.push(format!(
            "AGGREGATE BY [{}]: {} call(s){}",
            a.key_names.join(", "),
            a.calls.len(),
            if a.having.is_some() { ", HAVING" } else { "" }
        ));
        lines.push(format!("EMIT {:?}", p.emit).to_uppercase());
    }
    lines.push(format!(
        "PROJECT {}",
        p.columns
            .iter()
            .map(|c| format!("{} {}", c.name, c.ty))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(l) = p.limit {
        lines.push(format!("LIMIT {l}"));
    }
    lines.join("\n")
}
