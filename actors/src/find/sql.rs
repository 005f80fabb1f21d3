//! One SQL statement per query. Every DICOM constraint becomes a `dicom_match` call on the
//! stored main tags; where an index can narrow the candidates (identifiers, the expression
//! indexes of migration 0003), an equivalent, index-friendly condition is added beside it.

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;

use super::matching::RANGE;
use super::{Constraint, FindError, FindQuery, LabelsConstraint, OrderKey, Source};
use crate::index::{read, IndexError, ResourceRow};
use crate::model::main_tags::{self, TagNum};
use crate::model::Level;

#[derive(Default)]
struct Statement {
    depth: usize,
    wheres: Vec<String>,
    params: Vec<SqlValue>,
    /// The index each alias must use (`INDEXED BY`): without statistics, SQLite prefers the
    /// `(level, id)` index that gives the ORDER BY for free, and scans a whole level.
    indexed_by: Vec<(String, &'static str)>,
    /// A range on the index of `r`: without `OrderBy`, the results come in the index's order
    /// (then by id), so that `Limit` stops the range scan early instead of sorting it whole.
    index_order: Option<String>,
}

impl Statement {
    fn force_index(&mut self, alias: &str, index: &'static str) {
        if !self.indexed_by.iter().any(|(a, _)| a == alias) {
            self.indexed_by.push((alias.to_string(), index));
        }
    }

    fn table(&self, alias: &str) -> String {
        match self.indexed_by.iter().find(|(a, _)| a == alias) {
            Some((_, index)) => format!("resources {alias} INDEXED BY {index}"),
            None => format!("resources {alias}"),
        }
    }
}

/// The alias of the row of `row_level` for a query at `level` (`r`, or `aN` for ancestors).
fn alias(st: &mut Statement, level: Level, row_level: Level) -> String {
    let d = level as usize - row_level as usize;
    st.depth = st.depth.max(d);
    if d == 0 {
        "r".into()
    } else {
        format!("a{d}")
    }
}

fn path(tag: TagNum) -> String {
    format!("'$.\"{}\"'", main_tags::tag_key(tag))
}

fn json(alias: &str, tag: TagNum) -> String {
    format!("json_extract({alias}.main_tags, {})", path(tag))
}

/// The level whose `identifier` column holds this tag.
fn identifier_level(tag: TagNum) -> Option<Level> {
    match tag {
        main_tags::PATIENT_ID => Some(Level::Patient),
        main_tags::STUDY_INSTANCE_UID => Some(Level::Study),
        main_tags::SERIES_INSTANCE_UID => Some(Level::Series),
        main_tags::SOP_INSTANCE_UID => Some(Level::Instance),
        _ => None,
    }
}

/// Study tags with an expression index on their uppercase value (migration 0003).
const STUDY_INDEXES: &[(TagNum, &str)] = &[
    ((0x0008, 0x0050), "studies_accession"),
    ((0x0008, 0x0020), "studies_date"),
    ((0x0010, 0x0010), "studies_patient_name"),
];

/// The smallest string above every string that starts with `prefix`.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10ffff}")
}

/// Adds the index-friendly form of a constraint, when there is one: a superset of what
/// `dicom_match` accepts (both sides folded to ASCII uppercase), never a subset.
fn add_helper(st: &mut Statement, level: Level, k: &Constraint) {
    let p = k.pattern.trim();
    if p.contains('\\') || !p.is_ascii() {
        return;
    }
    let wild = p.contains('*') || p.contains('?');
    let range = k.flags & RANGE != 0 && p.contains('-');
    let upper = p.to_ascii_uppercase();
    // The bounds on the indexed (uppercase) value, if the pattern gives some.
    let mut bounds: Vec<(&str, String)> = Vec::new();
    if range {
        let (lo, hi) = upper.split_once('-').unwrap_or((&upper, ""));
        if !lo.trim().is_empty() {
            bounds.push((">=", lo.trim().to_string()));
        }
        if !hi.trim().is_empty() {
            bounds.push(("<=", format!("{}~", hi.trim())));
        }
    } else if !wild {
        bounds.push(("=", upper.clone()));
    } else if let Some(prefix) = upper.strip_suffix('*') {
        if !prefix.is_empty() && !prefix.contains('*') && !prefix.contains('?') {
            bounds.push((">=", prefix.to_string()));
            bounds.push(("<", prefix_end(prefix)));
        }
    }
    if bounds.is_empty() {
        return;
    }
    let (a, expr) = match identifier_level(k.tag) {
        Some(id_level) if id_level <= level => {
            if wild || range {
                return;
            }
            let a = alias(st, level, id_level);
            st.force_index(&a, "resources_identifier_upper");
            let expr = format!("upper({a}.identifier)");
            (a, expr)
        }
        _ => {
            let index = match STUDY_INDEXES.iter().find(|(t, _)| *t == k.tag) {
                Some((_, index)) if k.source == Source::Main(Level::Study) => *index,
                _ => return,
            };
            let a = alias(st, level, Level::Study);
            st.force_index(&a, index);
            // The indexes are partial (studies only): say so, for the planner.
            st.wheres.push(format!("{a}.level = 1"));
            let expr = format!("upper({})", json(&a, k.tag));
            (a, expr)
        }
    };
    if a == "r" && bounds[0].0 != "=" && st.index_order.is_none() {
        st.index_order = Some(expr.clone());
    }
    for (op, v) in bounds {
        st.wheres.push(format!("{expr} {op} ?"));
        st.params.push(SqlValue::Text(v));
    }
}

fn add_constraint(st: &mut Statement, level: Level, k: &Constraint) {
    match k.source {
        Source::Main(row_level) => {
            let a = alias(st, level, row_level);
            st.wheres
                .push(format!("dicom_match({}, ?, {})", json(&a, k.tag), k.flags));
            st.params.push(SqlValue::Text(k.pattern.clone()));
            add_helper(st, level, k);
        }
        Source::Below(row_level) => {
            let depth = row_level as usize - level as usize;
            let from = crate::index::read::descendant_join(depth);
            st.wheres.push(format!(
                "EXISTS (SELECT 1 FROM {from} WHERE d1.parent_id = r.id AND dicom_match({}, ?, {}))",
                json(&format!("d{depth}"), k.tag),
                k.flags
            ));
            st.params.push(SqlValue::Text(k.pattern.clone()));
        }
        Source::Dataset => {}
    }
}

fn add_labels(st: &mut Statement, q: &FindQuery) {
    let marks = vec!["?"; q.labels.len()].join(", ");
    match (q.labels_constraint, q.labels.is_empty()) {
        (LabelsConstraint::None, true) => st
            .wheres
            .push("NOT EXISTS (SELECT 1 FROM labels WHERE resource_id = r.id)".into()),
        (_, true) => return,
        (LabelsConstraint::All, false) => {
            for _ in &q.labels {
                st.wheres.push(
                    "EXISTS (SELECT 1 FROM labels WHERE resource_id = r.id AND label = ?)".into(),
                );
            }
        }
        (LabelsConstraint::Any, false) => st.wheres.push(format!(
            "EXISTS (SELECT 1 FROM labels WHERE resource_id = r.id AND label IN ({marks}))"
        )),
        (LabelsConstraint::None, false) => st.wheres.push(format!(
            "NOT EXISTS (SELECT 1 FROM labels WHERE resource_id = r.id AND label IN ({marks}))"
        )),
    }
    for l in &q.labels {
        st.params.push(SqlValue::Text(l.clone()));
    }
}

/// `SELECT r.id FROM … WHERE …` and its parameters, without ORDER BY.
fn build(q: &FindQuery, depth: usize, cols: &str) -> Result<(Statement, String), FindError> {
    let mut st = Statement {
        depth,
        ..Default::default()
    };
    for k in &q.constraints {
        add_constraint(&mut st, q.level, k);
    }
    // When an ancestor leads the search, the level of `r` must not pull the plan to a scan.
    let lead = if st.indexed_by.is_empty() || st.indexed_by.iter().any(|(a, _)| a == "r") {
        ""
    } else {
        "+"
    };
    st.wheres
        .insert(0, format!("{lead}r.level = {}", q.level as i64));
    for (kind, pattern) in &q.metadata {
        st.wheres.push(
            "dicom_match((SELECT value FROM metadata WHERE resource_id = r.id AND type = ?), ?, 0)"
                .into(),
        );
        st.params.push(SqlValue::Integer(*kind));
        st.params.push(SqlValue::Text(pattern.clone()));
    }
    add_labels(&mut st, q);
    if let Some((id, parent_level)) = q.parent {
        if parent_level >= q.level {
            return Err(FindError::BadQuery(
                "the parent must be of a level above the level of the query".into(),
            ));
        }
        let a = alias(&mut st, q.level, parent_level);
        st.wheres.push(format!("{a}.id = ?"));
        st.params.push(SqlValue::Integer(id));
    }
    let mut from = st.table("r");
    for d in 1..=st.depth {
        let below = if d == 1 {
            "r".to_string()
        } else {
            format!("a{}", d - 1)
        };
        let table = st.table(&format!("a{d}"));
        from.push_str(&format!(" JOIN {table} ON a{d}.id = {below}.parent_id"));
    }
    let sql = format!(
        "SELECT {cols} FROM {from} WHERE {}",
        st.wheres.join(" AND ")
    );
    Ok((st, sql))
}

fn order_by(st: &mut Statement, q: &FindQuery) -> String {
    let mut keys = Vec::new();
    for o in &q.order_by {
        let expr = match &o.key {
            OrderKey::Tag {
                tag,
                source: Source::Main(row_level),
                as_int,
            } => {
                let e = json(&alias(st, q.level, *row_level), *tag);
                if *as_int {
                    format!("CAST({e} AS INTEGER)")
                } else {
                    e
                }
            }
            OrderKey::Tag { .. } => continue,
            OrderKey::Metadata { kind, as_float } => {
                let e = format!(
                    "(SELECT value FROM metadata WHERE resource_id = r.id AND type = {kind})"
                );
                if *as_float {
                    format!("CAST({e} AS REAL)")
                } else {
                    e
                }
            }
        };
        let dir = if o.descending { "DESC" } else { "ASC" };
        keys.push(format!("({expr}) IS NULL, {expr} {dir}"));
    }
    keys.push("r.id".into());
    keys.join(", ")
}

/// The internal and public ids of the matching resources in order, after `since` and
/// `limit` (0: none).
pub fn ids(
    c: &Connection,
    q: &FindQuery,
    since: u64,
    limit: u64,
) -> Result<Vec<(i64, String)>, FindError> {
    select(c, q, since, limit, "r.id, r.public_id", |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })
}

/// The same, as whole rows (what `Expand` shows) read by the statement that matched them,
/// handed to `each` a page at a time (memory stays bounded whatever the number of results).
pub fn rows_in_pages(
    c: &Connection,
    q: &FindQuery,
    page: usize,
    each: &mut dyn FnMut(&[ResourceRow]) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    let (sql, params) = statement(q, q.since, q.limit, &read::resource_cols("r"))?;
    let mut stmt = c.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut buf = Vec::with_capacity(page);
    while let Some(row) = rows.next()? {
        buf.push(read::resource_from(row)?);
        if buf.len() == page {
            each(&buf)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        each(&buf)?;
    }
    Ok(())
}

fn select<T>(
    c: &Connection,
    q: &FindQuery,
    since: u64,
    limit: u64,
    cols: &str,
    map: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>, FindError> {
    let (sql, params) = statement(q, since, limit, cols)?;
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), map)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The SQL of a find (with its ORDER BY, LIMIT and OFFSET) and its parameters.
fn statement(
    q: &FindQuery,
    since: u64,
    limit: u64,
    cols: &str,
) -> Result<(String, Vec<SqlValue>), FindError> {
    // The ancestors that ordering needs are joined too.
    let mut order_st = Statement::default();
    let mut order = order_by(&mut order_st, q);
    let (st, select) = build(q, order_st.depth, cols)?;
    if let (true, Some(expr)) = (q.order_by.is_empty(), &st.index_order) {
        order = format!("{expr}, r.id");
    }
    let limit = if limit == 0 { -1 } else { limit as i64 };
    let sql = format!("{select} ORDER BY {order} LIMIT {limit} OFFSET {since}");
    tracing::trace!("find: {sql}");
    Ok((sql, st.params))
}

/// How many resources match.
pub fn count(c: &Connection, q: &FindQuery) -> Result<u64, FindError> {
    let (st, select) = build(q, 0, "r.id")?;
    let sql = format!("SELECT count(*) FROM ({select})");
    let mut stmt = c.prepare_cached(&sql)?;
    let n: i64 = stmt.query_row(rusqlite::params_from_iter(st.params.iter()), |r| r.get(0))?;
    Ok(n as u64)
}
