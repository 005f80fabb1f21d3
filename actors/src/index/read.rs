//! Read queries, on a pool of read-only connections.

use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::write::RemoteTable;
use super::IndexError;
use crate::model::Level;

type Result<T> = std::result::Result<T, IndexError>;

/// One resource as the index knows it.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    pub id: i64,
    pub public_id: String,
    pub level: Level,
    pub parent_id: Option<i64>,
    pub main_tags: Map<String, Value>,
    pub is_stable: bool,
    pub protected: bool,
}

fn resource_from(row: &SqliteRow) -> ResourceRow {
    let tags: String = row.get("main_tags");
    ResourceRow {
        id: row.get("id"),
        public_id: row.get("public_id"),
        level: Level::from_i64(row.get("level")).unwrap_or(Level::Instance),
        parent_id: row.get("parent_id"),
        main_tags: match serde_json::from_str(&tags) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
        is_stable: row.get::<i64, _>("is_stable") != 0,
        protected: row.get::<i64, _>("protected") != 0,
    }
}

const RESOURCE_COLS: &str = "id, public_id, level, parent_id, main_tags, is_stable, protected";

/// One entry of `/changes`.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    pub seq: i64,
    pub change_type: i64,
    pub level: Level,
    pub public_id: String,
    pub date: String,
}

/// Global counts and sizes.
#[derive(Debug, Clone, Default)]
pub struct Statistics {
    pub counts: [u64; 4],
    pub disk_size: u64,
    pub uncompressed_size: u64,
    pub dicom_disk_size: u64,
    pub dicom_uncompressed_size: u64,
}

/// One attachment row.
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub file_type: i64,
    pub uuid: String,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub compression: i64,
    pub uncompressed_md5: String,
    pub compressed_md5: String,
    pub revision: i64,
}

/// Read access to the index (cheap to clone).
#[derive(Clone)]
pub struct IndexReader {
    pool: SqlitePool,
}

impl IndexReader {
    pub fn new(pool: SqlitePool) -> Self {
        IndexReader { pool }
    }

    /// A resource by its public id, if it is of `level`.
    pub async fn resource(&self, level: Level, public_id: &str) -> Result<ResourceRow> {
        let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE public_id = ?");
        let row = sqlx::query(&sql)
            .bind(public_id)
            .fetch_optional(&self.pool)
            .await?;
        match row.map(|r| resource_from(&r)) {
            Some(r) if r.level == level => Ok(r),
            _ => Err(IndexError::UnknownResource),
        }
    }

    /// A resource of any level by its public id.
    pub async fn resource_any(&self, public_id: &str) -> Result<Option<ResourceRow>> {
        let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE public_id = ?");
        let row = sqlx::query(&sql)
            .bind(public_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| resource_from(&r)))
    }

    /// A resource by its internal id.
    pub async fn resource_by_id(&self, id: i64) -> Result<ResourceRow> {
        let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| resource_from(&r))
            .ok_or(IndexError::UnknownResource)
    }

    /// The resources of a level, in creation order, skipping `since` and keeping `limit` (0 = all).
    pub async fn list(&self, level: Level, since: u64, limit: u64) -> Result<Vec<ResourceRow>> {
        let limit = if limit == 0 { -1 } else { limit as i64 };
        let sql = format!(
            "SELECT {RESOURCE_COLS} FROM resources WHERE level = ? ORDER BY id LIMIT ? OFFSET ?"
        );
        let rows = sqlx::query(&sql)
            .bind(level as i64)
            .bind(limit)
            .bind(since as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(resource_from).collect())
    }

    /// The public ids of a level (the cheap form of [`Self::list`]).
    pub async fn list_ids(&self, level: Level, since: u64, limit: u64) -> Result<Vec<String>> {
        let limit = if limit == 0 { -1 } else { limit as i64 };
        Ok(sqlx::query_scalar(
            "SELECT public_id FROM resources WHERE level = ? ORDER BY id LIMIT ? OFFSET ?",
        )
        .bind(level as i64)
        .bind(limit)
        .bind(since as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The children of a resource.
    pub async fn children(&self, id: i64) -> Result<Vec<ResourceRow>> {
        let sql = format!("SELECT {RESOURCE_COLS} FROM resources WHERE parent_id = ? ORDER BY id");
        let rows = sqlx::query(&sql).bind(id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(resource_from).collect())
    }

    /// The public ids of the children of a resource.
    pub async fn children_ids(&self, id: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT public_id FROM resources WHERE parent_id = ? ORDER BY id")
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The descendants of a resource at a lower level.
    pub async fn descendants(&self, id: i64, level: Level) -> Result<Vec<ResourceRow>> {
        let sql = format!(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) \
             SELECT {RESOURCE_COLS} FROM resources WHERE id IN (SELECT id FROM t) AND level = ? ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(id)
            .bind(level as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(resource_from).collect())
    }

    /// All metadata of a resource, `(type, value, revision)`.
    pub async fn metadata(&self, id: i64) -> Result<Vec<(i64, String, i64)>> {
        let rows = sqlx::query(
            "SELECT type, value, revision FROM metadata WHERE resource_id = ? ORDER BY type",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// One metadata of a resource.
    pub async fn metadata_one(&self, id: i64, kind: i64) -> Result<Option<(String, i64)>> {
        let row =
            sqlx::query("SELECT value, revision FROM metadata WHERE resource_id = ? AND type = ?")
                .bind(id)
                .bind(kind)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// The attachments of a resource.
    pub async fn attachments(&self, id: i64) -> Result<Vec<AttachmentRow>> {
        let rows = sqlx::query(
            "SELECT file_type, uuid, compressed_size, uncompressed_size, compression, uncompressed_md5, \
             compressed_md5, revision FROM attachments WHERE resource_id = ? ORDER BY file_type",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AttachmentRow {
                file_type: r.get(0),
                uuid: r.get(1),
                compressed_size: r.get::<i64, _>(2) as u64,
                uncompressed_size: r.get::<i64, _>(3) as u64,
                compression: r.get(4),
                uncompressed_md5: r.get(5),
                compressed_md5: r.get(6),
                revision: r.get(7),
            })
            .collect())
    }

    /// The transfer syntax and the dataset before Pixel Data of an instance.
    pub async fn header(&self, id: i64) -> Result<(String, Vec<u8>)> {
        let row = sqlx::query(
            "SELECT transfer_syntax, header FROM instance_headers WHERE resource_id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(IndexError::InexistentItem)?;
        Ok((row.get(0), row.get(1)))
    }

    /// Labels of a resource.
    pub async fn labels(&self, id: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT label FROM labels WHERE resource_id = ? ORDER BY label")
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Counts the descendants of a resource per level, and sums their attachment sizes.
    pub async fn resource_statistics(&self, id: i64) -> Result<Statistics> {
        let rows = sqlx::query(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) \
             SELECT r.level, COUNT(*) FROM resources r JOIN t ON r.id = t.id GROUP BY r.level",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut stats = Statistics::default();
        for r in rows {
            if let Some(l) = Level::from_i64(r.get(0)) {
                stats.counts[l as usize] = r.get::<i64, _>(1) as u64;
            }
        }
        let row = sqlx::query(
            "WITH RECURSIVE t(id) AS (SELECT ? UNION ALL SELECT r.id FROM resources r JOIN t ON r.parent_id = t.id) \
             SELECT COALESCE(SUM(compressed_size),0), COALESCE(SUM(uncompressed_size),0), \
             COALESCE(SUM(CASE WHEN file_type = 1 THEN compressed_size ELSE 0 END),0), \
             COALESCE(SUM(CASE WHEN file_type = 1 THEN uncompressed_size ELSE 0 END),0) \
             FROM attachments a JOIN t ON a.resource_id = t.id",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        stats.disk_size = row.get::<i64, _>(0) as u64;
        stats.uncompressed_size = row.get::<i64, _>(1) as u64;
        stats.dicom_disk_size = row.get::<i64, _>(2) as u64;
        stats.dicom_uncompressed_size = row.get::<i64, _>(3) as u64;
        Ok(stats)
    }

    /// Global counts and sizes.
    pub async fn statistics(&self) -> Result<Statistics> {
        let mut stats = Statistics::default();
        let rows = sqlx::query("SELECT level, COUNT(*) FROM resources GROUP BY level")
            .fetch_all(&self.pool)
            .await?;
        for r in rows {
            if let Some(l) = Level::from_i64(r.get(0)) {
                stats.counts[l as usize] = r.get::<i64, _>(1) as u64;
            }
        }
        let row = sqlx::query("SELECT COALESCE(SUM(compressed_size),0), COALESCE(SUM(uncompressed_size),0) FROM attachments")
            .fetch_one(&self.pool)
            .await?;
        stats.disk_size = row.get::<i64, _>(0) as u64;
        stats.uncompressed_size = row.get::<i64, _>(1) as u64;
        Ok(stats)
    }

    /// Changes after `since`, at most `limit`, optionally filtered by type and bounded by `to`.
    pub async fn changes(
        &self,
        since: i64,
        limit: i64,
        types: &[i64],
        to: Option<i64>,
    ) -> Result<Vec<ChangeRow>> {
        let mut sql = String::from(
            "SELECT seq, change_type, level, public_id, date FROM changes WHERE seq > ?",
        );
        if !types.is_empty() {
            sql.push_str(&format!(
                " AND change_type IN ({})",
                vec!["?"; types.len()].join(",")
            ));
        }
        if to.is_some() {
            sql.push_str(" AND seq <= ?");
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        let mut q = sqlx::query(&sql).bind(since);
        for t in types {
            q = q.bind(t);
        }
        if let Some(to) = to {
            q = q.bind(to);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(change_from).collect())
    }

    /// The newest change, if any.
    pub async fn last_change(&self) -> Result<Option<ChangeRow>> {
        let row = sqlx::query("SELECT seq, change_type, level, public_id, date FROM changes ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(change_from))
    }

    /// The highest sequence number ever used in the change log (0 if none).
    pub async fn last_seq(&self) -> Result<i64> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Exports after `since`.
    pub async fn exports(&self, since: i64, limit: i64) -> Result<Vec<Map<String, Value>>> {
        let rows = sqlx::query(
            "SELECT seq, level, public_id, modality, date, patient_id, study_uid, series_uid, sop_uid FROM exports \
             WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let level = Level::from_i64(r.get(1)).unwrap_or(Level::Instance);
                let mut m = Map::new();
                m.insert("Seq".into(), Value::from(r.get::<i64, _>(0)));
                m.insert("ResourceType".into(), Value::from(level.name()));
                m.insert("ID".into(), Value::from(r.get::<String, _>(2)));
                m.insert(
                    "Path".into(),
                    Value::from(format!("/{}/{}", level.plural(), r.get::<String, _>(2))),
                );
                m.insert("RemoteModality".into(), Value::from(r.get::<String, _>(3)));
                m.insert("Date".into(), Value::from(r.get::<String, _>(4)));
                m.insert("PatientID".into(), Value::from(r.get::<String, _>(5)));
                if level >= Level::Study {
                    m.insert(
                        "StudyInstanceUID".into(),
                        Value::from(r.get::<String, _>(6)),
                    );
                }
                if level >= Level::Series {
                    m.insert(
                        "SeriesInstanceUID".into(),
                        Value::from(r.get::<String, _>(7)),
                    );
                }
                if level >= Level::Instance {
                    m.insert("SOPInstanceUID".into(), Value::from(r.get::<String, _>(8)));
                }
                m
            })
            .collect())
    }

    /// Resources whose identifier (PatientID, Study/Series/SOP Instance UID) equals `value`.
    pub async fn lookup(&self, value: &str) -> Result<Vec<(Level, String)>> {
        let rows = sqlx::query(
            "SELECT level, public_id FROM resources WHERE identifier = ? ORDER BY level, id",
        )
        .bind(value)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((Level::from_i64(r.get(0))?, r.get::<String, _>(1))))
            .collect())
    }

    /// Whether an instance with this public id exists.
    pub async fn exists(&self, public_id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE public_id = ?")
            .bind(public_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// The modalities or peers kept in the database.
    pub async fn remotes(&self, table: RemoteTable) -> Result<Vec<(String, Value)>> {
        let sql = format!("SELECT name, config FROM {} ORDER BY name", table.name());
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let cfg: String = r.get(1);
                (r.get(0), serde_json::from_str(&cfg).unwrap_or(Value::Null))
            })
            .collect())
    }
}

fn change_from(r: &SqliteRow) -> ChangeRow {
    ChangeRow {
        seq: r.get(0),
        change_type: r.get(1),
        level: Level::from_i64(r.get(2)).unwrap_or(Level::Instance),
        public_id: r.get(3),
        date: r.get(4),
    }
}

impl IndexReader {
    /// One metadata of every child of a resource (`None` where a child lacks it).
    pub async fn children_metadata(&self, id: i64, kind: i64) -> Result<Vec<Option<String>>> {
        Ok(sqlx::query_scalar(
            "SELECT m.value FROM resources r LEFT JOIN metadata m ON m.resource_id = r.id AND m.type = ? \
             WHERE r.parent_id = ? ORDER BY r.id",
        )
        .bind(kind)
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl IndexReader {
    /// The newest `limit` changes with `seq <= to` (of the given types), in ascending order.
    pub async fn changes_before(
        &self,
        to: i64,
        limit: i64,
        types: &[i64],
    ) -> Result<Vec<ChangeRow>> {
        let mut sql = String::from(
            "SELECT seq, change_type, level, public_id, date FROM changes WHERE seq <= ?",
        );
        if !types.is_empty() {
            sql.push_str(&format!(
                " AND change_type IN ({})",
                vec!["?"; types.len()].join(",")
            ));
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        let mut q = sqlx::query(&sql).bind(to);
        for t in types {
            q = q.bind(t);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        let mut out: Vec<ChangeRow> = rows.iter().map(change_from).collect();
        out.reverse();
        Ok(out)
    }
}
