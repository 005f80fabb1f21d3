//! Reads of the logs and lists kept beside the resources: `/changes`, `/exports`, and the
//! modalities and peers.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{Map, Value};

use super::read::collect;
use super::write::RemoteTable;
use super::{IndexError, IndexReader};
use crate::model::Level;

type Result<T> = std::result::Result<T, IndexError>;

/// One entry of `/changes`.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub seq: i64,
    pub change_type: i64,
    pub level: Level,
    pub public_id: String,
    pub date: String,
}

impl IndexReader {
    /// Changes after `since`, at most `limit`, optionally filtered by type and bounded by `to`.
    pub async fn changes(
        &self,
        since: i64,
        limit: i64,
        types: &[i64],
        to: Option<i64>,
    ) -> Result<Vec<ChangeRow>> {
        let types = types.to_vec();
        self.with(move |c| {
            let mut sql = String::from("SELECT seq, change_type, level, public_id, date FROM changes WHERE seq > ?1 AND seq <= ?2");
            if !types.is_empty() {
                let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
                sql.push_str(&format!(" AND change_type IN ({})", list.join(",")));
            }
            sql.push_str(" ORDER BY seq LIMIT ?3");
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![since, to.unwrap_or(i64::MAX), limit], change_from)?;
            collect(rows)
        })
        .await
    }
    /// The newest `limit` changes with `seq <= to` (of the given types), in ascending order.
    pub async fn changes_before(
        &self,
        to: i64,
        limit: i64,
        types: &[i64],
    ) -> Result<Vec<ChangeRow>> {
        let types = types.to_vec();
        self.with(move |c| {
            let mut sql = String::from(
                "SELECT seq, change_type, level, public_id, date FROM changes WHERE seq <= ?1",
            );
            if !types.is_empty() {
                let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
                sql.push_str(&format!(" AND change_type IN ({})", list.join(",")));
            }
            sql.push_str(" ORDER BY seq DESC LIMIT ?2");
            let mut stmt = c.prepare_cached(&sql)?;
            let mut out = collect(stmt.query_map(params![to, limit], change_from)?)?;
            out.reverse();
            Ok(out)
        })
        .await
    }
    /// The newest change, if any.
    pub async fn last_change(&self) -> Result<Option<ChangeRow>> {
        self.with(|c| {
            Ok(c.prepare_cached("SELECT seq, change_type, level, public_id, date FROM changes ORDER BY seq DESC LIMIT 1")?
                .query_row([], change_from)
                .optional()?)
        })
        .await
    }
    /// The highest sequence number ever used in the change log (0 if none).
    pub async fn last_seq(&self) -> Result<i64> {
        self.with(|c| {
            let seq: Option<i64> = c
                .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")?
                .query_row([], |r| r.get(0))
                .optional()?;
            Ok(seq.unwrap_or(0))
        })
        .await
    }
    /// Exports after `since`.
    pub async fn exports(&self, since: i64, limit: i64) -> Result<Vec<Map<String, Value>>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, level, public_id, modality, date, patient_id, study_uid, series_uid, sop_uid FROM exports \
                 WHERE seq > ? ORDER BY seq LIMIT ?",
            )?;
            let rows = stmt.query_map(params![since, limit], export_from)?;
            collect(rows)
        })
        .await
    }

    /// The last export, if any (`/exports?last`).
    pub async fn last_export(&self) -> Result<Option<Map<String, Value>>> {
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, level, public_id, modality, date, patient_id, study_uid, series_uid, sop_uid FROM exports \
                 ORDER BY seq DESC LIMIT 1",
            )?;
            Ok(stmt.query_row([], export_from).optional()?)
        })
        .await
    }

    /// The modalities or peers kept in the database.
    pub async fn remotes(&self, table: RemoteTable) -> Result<Vec<(String, Value)>> {
        self.with(move |c| remotes(c, table)).await
    }
}

/// The modalities or peers kept in the database, by name.
pub fn remotes(c: &Connection, table: RemoteTable) -> Result<Vec<(String, Value)>> {
    let sql = format!("SELECT name, config FROM {} ORDER BY name", table.name());
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map([], |r| {
        let cfg: String = r.get(1)?;
        Ok((
            r.get::<_, String>(0)?,
            serde_json::from_str(&cfg).unwrap_or(Value::Null),
        ))
    })?;
    collect(rows)
}

fn change_from(r: &Row) -> rusqlite::Result<ChangeRow> {
    Ok(ChangeRow {
        seq: r.get(0)?,
        change_type: r.get(1)?,
        level: Level::from_i64(r.get(2)?).unwrap_or(Level::Instance),
        public_id: r.get(3)?,
        date: r.get(4)?,
    })
}

fn export_from(r: &Row) -> rusqlite::Result<Map<String, Value>> {
    let level = Level::from_i64(r.get(1)?).unwrap_or(Level::Instance);
    let id: String = r.get(2)?;
    let mut m = Map::new();
    m.insert("Seq".into(), Value::from(r.get::<_, i64>(0)?));
    m.insert("ResourceType".into(), Value::from(level.name()));
    m.insert(
        "Path".into(),
        Value::from(format!("/{}/{}", level.plural(), id)),
    );
    m.insert("ID".into(), Value::from(id));
    m.insert("RemoteModality".into(), Value::from(r.get::<_, String>(3)?));
    m.insert("Date".into(), Value::from(r.get::<_, String>(4)?));
    m.insert("PatientID".into(), Value::from(r.get::<_, String>(5)?));
    for (min, key, col) in [
        (Level::Study, "StudyInstanceUID", 6),
        (Level::Series, "SeriesInstanceUID", 7),
        (Level::Instance, "SOPInstanceUID", 8),
    ] {
        if level >= min {
            m.insert(key.into(), Value::from(r.get::<_, String>(col)?));
        }
    }
    Ok(m)
}

impl IndexReader {
    /// Whether a resource with this public id exists.
    pub async fn exists(&self, public_id: &str) -> Result<bool> {
        let id = public_id.to_string();
        self.with(move |c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM resources WHERE public_id = ?")?
                    .query_row([id], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
        .await
    }
}
