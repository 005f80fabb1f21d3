//! ZIP archives of resources (`/{level}/{id}/archive`, `/tools/create-archive`), as a job or
//! streamed straight to the client: the folder layout of Orthanc mainline
//! (`PatientID - PatientName/Accession - StudyDescription/SeriesNumber - Modality -
//! SeriesDescription/MR000001.dcm`). Files are stored, not deflated: DICOM deflates poorly for
//! the CPU it costs (Orthanc spends ~50 s of CPU per GB on it), and a stored archive is written
//! at the speed of the disk.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{dicomdir, JobContext, JobDone, JobError};
use crate::index::{read, ResourceRow};
use crate::model::Level;
use crate::storage::{StorageArea, StoredCompression};

/// What an archive job does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ArchiveRequest {
    /// Public ids of resources of any level.
    pub resources: Vec<String>,
    /// Folder names in UTF-8 (Orthanc mainline's default) rather than reduced to ASCII.
    pub utf8: bool,
    /// A DICOM media: files `IMAGES/IMn` and a `DICOMDIR`.
    pub media: bool,
    /// With non-standard attributes in the DICOMDIR (`?extended`).
    pub extended: bool,
    /// The name given to the downloaded file (`Content-Disposition`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The transfer syntax of the files in the archive (`transcode`), and the quality of
    /// lossy JPEG (`lossy-quality`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lossy_quality: Option<u8>,
}

/// One file of the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub uuid: String,
    pub compression: StoredCompression,
}

/// What goes into an archive: its files in order, and the DICOMDIR of a media.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub entries: Vec<Entry>,
    pub dicomdir: Option<Vec<u8>>,
    /// Transfer syntax and lossy quality the files are transcoded to.
    pub transcode: Option<(String, Option<u8>)>,
}

/// The archive's content, from the index (one read transaction). Blocking.
pub fn plan(c: &Connection, req: &ArchiveRequest) -> Result<Plan, JobError> {
    let mut rows: HashMap<i64, ResourceRow> = HashMap::new();
    let mut seen = HashSet::new();
    // (patient, study, series, instance) ids, with the level the request named.
    let mut found: Vec<([i64; 4], Level)> = Vec::new();
    for public_id in &req.resources {
        let top = read::resource_by_public_id(c, public_id)?
            .ok_or_else(|| JobError::UnknownResource(public_id.clone()))?;
        let instances = if top.level == Level::Instance {
            vec![top.clone()]
        } else {
            read::descendants(c, top.id, Level::Instance)?
        };
        for inst in instances {
            if !seen.insert(inst.id) {
                continue;
            }
            let mut chain = [0i64; 4];
            chain[3] = inst.id;
            let mut parent = inst.parent_id;
            rows.insert(inst.id, inst);
            for level in [2, 1, 0] {
                let id = parent.ok_or(JobError::Failed("resource without parent".into()))?;
                if let std::collections::hash_map::Entry::Vacant(v) = rows.entry(id) {
                    v.insert(read::resource_by_id(c, id)?);
                }
                chain[level] = id;
                parent = rows[&id].parent_id;
            }
            found.push((chain, top.level));
        }
    }
    // Group by patient, study and series in the order they first appear.
    let first: HashMap<i64, usize> = found
        .iter()
        .enumerate()
        .flat_map(|(i, (chain, _))| chain[..3].iter().map(move |id| (*id, i)))
        .fold(HashMap::new(), |mut m, (id, i)| {
            m.entry(id).or_insert(i);
            m
        });
    found.sort_by_key(|(chain, _)| {
        (
            first[&chain[0]],
            first[&chain[1]],
            first[&chain[2]],
            chain[3],
        )
    });
    if req.media {
        let mut plan = media_plan(c, &found, req.extended, req.transcode.as_deref())?;
        plan.transcode = req.transcode.clone().map(|ts| (ts, req.lossy_quality));
        return Ok(plan);
    }
    let tag = |id: i64, t: (u16, u16)| rows[&id].main_tags.get(t).map(str::to_string);
    let mut names: HashMap<i64, String> = HashMap::new();
    let mut used: HashSet<String> = HashSet::new();
    let mut counters: HashMap<i64, u32> = HashMap::new();
    let mut out = Vec::with_capacity(found.len());
    for ([patient, study, series, instance], top) in found {
        // A study archived alone shows the patient as that study recorded it.
        let who = if top == Level::Patient {
            patient
        } else {
            study
        };
        let p = names
            .entry(patient)
            .or_insert_with(|| {
                folder(
                    &[tag(who, (0x0010, 0x0020)), tag(who, (0x0010, 0x0010))],
                    req.utf8,
                    "Patient",
                )
            })
            .clone();
        let s = names
            .entry(study)
            .or_insert_with(|| {
                folder(
                    &[tag(study, (0x0008, 0x0050)), tag(study, (0x0008, 0x1030))],
                    req.utf8,
                    "Study",
                )
            })
            .clone();
        let modality = tag(series, (0x0008, 0x0060)).unwrap_or_default();
        let se = names
            .entry(series)
            .or_insert_with(|| {
                folder(
                    &[
                        tag(series, (0x0020, 0x0011)),
                        Some(modality.clone()),
                        tag(series, (0x0008, 0x103e)),
                    ],
                    req.utf8,
                    "Series",
                )
            })
            .clone();
        let dir = format!("{p}/{s}/{se}/");
        let number = tag(instance, (0x0020, 0x0013)).and_then(|n| n.trim().parse::<u32>().ok());
        let counter = counters.entry(series).or_insert(0);
        let mut name = file_name(&modality, number.unwrap_or(*counter));
        while !used.insert(format!("{dir}{name}")) {
            *counter += 1;
            name = file_name(&modality, *counter);
        }
        if number.is_none() {
            *counter += 1;
        }
        out.push(entry(c, instance, format!("{dir}{name}"))?);
    }
    Ok(Plan {
        entries: out,
        dicomdir: None,
        transcode: req.transcode.clone().map(|ts| (ts, req.lossy_quality)),
    })
}

/// The archive file of an instance.
fn entry(c: &Connection, instance: i64, path: String) -> Result<Entry, JobError> {
    let att = read::attachments(c, instance)?
        .into_iter()
        .find(|a| a.file_type == 1)
        .ok_or_else(|| JobError::Failed("an instance has no DICOM file".into()))?;
    Ok(Entry {
        path,
        uuid: att.uuid,
        compression: if att.compression == 2 {
            StoredCompression::ZlibWithSize
        } else {
            StoredCompression::None
        },
    })
}

/// A media: `IMAGES/IM0`, `IMAGES/IM1`... and their DICOMDIR, from the stored datasets (the
/// records name `transcode`, the syntax the files are written in, if given).
fn media_plan(
    c: &Connection,
    found: &[([i64; 4], Level)],
    extended: bool,
    transcode: Option<&str>,
) -> Result<Plan, JobError> {
    let now = chrono::Local::now();
    let (date, time) = (
        now.format("%Y%m%d").to_string(),
        now.format("%H%M%S").to_string(),
    );
    let mut entries = Vec::with_capacity(found.len());
    let mut records = Vec::with_capacity(found.len());
    for (k, (chain, _)) in found.iter().enumerate() {
        let name = format!("IM{k}");
        let file = crate::find::dataset::load(c, chain[3])
            .map_err(|e| JobError::Failed(e.to_string()))?
            .ok_or_else(|| JobError::Failed("an instance has no stored dataset".into()))?;
        let mut record = dicomdir::Instance::from_file(
            &file,
            vec!["IMAGES".into(), name.clone()],
            extended,
            (&date, &time),
        );
        if let Some(ts) = transcode {
            record.transfer_syntax = ts.to_string();
        }
        records.push(record);
        entries.push(entry(c, chain[3], format!("IMAGES/{name}"))?);
    }
    let uid = crate::model::dicom::modify::new_uid();
    Ok(Plan {
        entries,
        dicomdir: Some(dicomdir::write(&records, &uid)),
        transcode: None,
    })
}

/// A folder name: the non-empty parts joined with ` - ` (reduced to printable ASCII unless
/// `utf8`), or `Unknown {level}`.
fn folder(parts: &[Option<String>], utf8: bool, level: &str) -> String {
    let parts: Vec<String> = parts
        .iter()
        .flatten()
        .map(|p| {
            let p: String = if utf8 {
                p.clone()
            } else {
                p.chars().filter(|c| (' '..='~').contains(c)).collect()
            };
            p.replace(['/', '\\'], " ").trim().to_string()
        })
        .filter(|p| !p.is_empty())
        .collect();
    let name = parts.join(" - ");
    if name.is_empty() || name.chars().all(|c| c == '^') {
        format!("Unknown {level}")
    } else {
        name
    }
}

/// `MR000001.dcm`: up to two letters of the modality, then the number on 8 characters.
fn file_name(modality: &str, n: u32) -> String {
    let prefix: String = modality
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(2)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    format!("{prefix}{n:0width$}.dcm", width = 8 - prefix.len())
}

/// Sizes of a written archive.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    pub instances: u64,
    pub uncompressed: u64,
    pub archive: u64,
}

/// Writes the ZIP of `entries` to `out` as it goes (a stream: no seeking), calling `step`
/// after each file (progress, cancellation). Blocking.
pub fn write_zip<W: Write>(
    plan: &Plan,
    storage: &StorageArea,
    out: W,
    mut step: impl FnMut(usize) -> Result<(), JobError>,
) -> Result<Written, JobError> {
    let counting = Counting { inner: out, n: 0 };
    let mut zip = zip::ZipWriter::new_stream(counting);
    let mut written = Written::default();
    let fail =
        |e: &dyn std::fmt::Display| JobError::Failed(format!("cannot write the archive: {e}"));
    let now = {
        use chrono::{Datelike, Timelike};
        let t = chrono::Local::now();
        zip::DateTime::from_date_and_time(
            t.year().clamp(1980, 2107) as u16,
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
        )
        .unwrap_or_default()
    };
    let stored = || {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(now)
    };
    for (i, e) in plan.entries.iter().enumerate() {
        let mut data = storage
            .read(&e.uuid, e.compression)
            .map_err(|err| fail(&err))?;
        if let Some((ts, quality)) = &plan.transcode {
            data = crate::transcode::transcode(&data, ts, *quality).map_err(|err| fail(&err))?;
        }
        let opts = stored().large_file(data.len() as u64 >= u32::MAX as u64);
        zip.start_file(e.path.as_str(), opts)
            .map_err(|err| fail(&err))?;
        zip.write_all(&data).map_err(|err| fail(&err))?;
        written.instances += 1;
        written.uncompressed += data.len() as u64;
        step(i + 1)?;
    }
    if let Some(dir) = &plan.dicomdir {
        zip.start_file("DICOMDIR", stored()).map_err(|e| fail(&e))?;
        zip.write_all(dir).map_err(|e| fail(&e))?;
    }
    let counting = zip.finish().map_err(|e| fail(&e))?.into_inner();
    written.archive = counting.n;
    Ok(written)
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The `Content` of an archive job.
pub fn content(w: &Written) -> Value {
    const MB: u64 = 1024 * 1024;
    json!({
        "Description": "REST API",
        "InstancesCount": w.instances,
        "UncompressedSize": w.uncompressed.to_string(),
        "UncompressedSizeMB": w.uncompressed / MB,
        "ArchiveSize": w.archive.to_string(),
        "ArchiveSizeMB": w.archive / MB,
    })
}

/// Runs an archive job: the ZIP goes to the job's output file.
pub async fn run_job(req: ArchiveRequest, ctx: JobContext) -> Result<JobDone, JobError> {
    let plan = ctx.reader.with(move |c| Ok(plan(c, &req))).await??;
    let written = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&ctx.output)
            .map_err(|e| JobError::Failed(format!("cannot create the archive: {e}")))?;
        let total = plan.entries.len() as u64;
        let w = write_zip(&plan, &ctx.storage, io::BufWriter::new(file), |done| {
            ctx.set_progress(done as u64, total);
            ctx.check_cancel()
        })?;
        Ok::<_, JobError>(w)
    })
    .await
    .map_err(|e| JobError::Failed(e.to_string()))??;
    Ok(JobDone {
        content: content(&written),
        output: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_and_file_names_as_orthanc_mainline() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            folder(&[s("887"), s("KNEE")], false, "Patient"),
            "887 - KNEE"
        );
        assert_eq!(
            folder(&[s("0"), s("IRM cérébrale, neuro-crâne")], false, "Study"),
            "0 - IRM crbrale, neuro-crne"
        );
        assert_eq!(
            folder(&[s("0"), s("IRM cérébrale")], true, "Study"),
            "0 - IRM cérébrale"
        );
        assert_eq!(
            folder(&[None, s("HELLO^SERIES")], false, "Study"),
            "HELLO^SERIES"
        );
        assert_eq!(
            folder(&[None, s(""), None], false, "Series"),
            "Unknown Series"
        );
        assert_eq!(folder(&[s("^^")], false, "Patient"), "Unknown Patient");
        assert_eq!(file_name("MR", 1), "MR000001.dcm");
        assert_eq!(file_name("", 0), "00000000.dcm");
        assert_eq!(file_name("x", 12), "X0000012.dcm");
    }
}
