//! # pacsnode
//!
//! A PACS node that is a drop-in replacement for the Orthanc DICOM server: same REST API, same
//! configuration file, same identifiers.
//!
//! # Layout
//! - `main.rs`: command line, start-up, actor wiring, graceful stop and `/tools/reset`.
//! - [`settings`]: Orthanc-format configuration (comments, `${VAR}`, folders) over the defaults.
//! - [`logging`]: `tracing` with Orthanc's run-time log levels and categories.
//! - [`rest`]: the actix-web front end, one module per family of routes.
//! - The actors (ingestion, index, changes, Lua) live in the `pacsnode-actors` crate.

mod dicom_access;
mod dicom_find;
mod dicom_move;
mod logging;
mod rest;
mod settings;
mod storage_commitment;

use pacsnode_actors::jobs::JobsConfig;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::Actor;
use actix_web::middleware::{from_fn, Compress, Condition, NormalizePath, TrailingSlash};
use actix_web::{web, App, HttpServer};
use anyhow::{Context, Result};
use pacsnode_actors::changes::ChangesActor;
use pacsnode_actors::dicom_scp::DicomServer;
use pacsnode_actors::dimse::{LiveSettings, ScpConfig};
use pacsnode_actors::index::{self, IndexWriter, RemoteTable, StorageLimits};
use pacsnode_actors::ingest::{IngestActor, IngestSettings};
use pacsnode_actors::lua_actor::LuaActor;
use pacsnode_actors::model::dicom::{Encoding, PrivateDictionary};
use pacsnode_actors::model::transfer_syntax::expand_syntaxes;
use pacsnode_actors::storage::StorageArea;
use serde_json::Value;

use crate::logging::LogLevels;
use crate::rest::{AppState, RuntimeState};
use crate::settings::Settings;

/// What `/tools/shutdown` and `/tools/reset` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Stop,
    Restart,
}

const HELP: &str = "Usage: pacsnode [OPTION]... [CONFIGURATION]
A PACS node compatible with the Orthanc DICOM server.

The CONFIGURATION argument is an Orthanc-format JSON file (comments allowed), or a folder
whose .json files are merged. Without it, the built-in defaults are used.

  --config=FILE   write the default configuration to FILE and exit
  --logdir=DIR    write the logs to a new file in DIR
  --logfile=FILE  write the logs to FILE
  --verbose       more verbose logs
  --trace         most verbose logs
  --help          this help
  --version       version information
";

struct Cli {
    config: Option<PathBuf>,
    level: &'static str,
    logfile: Option<PathBuf>,
}

fn parse_cli() -> Result<Option<Cli>> {
    let mut cli = Cli {
        config: None,
        level: "default",
        logfile: None,
    };
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--version" => {
                println!(
                    "pacsnode {} (Orthanc REST API mainline)",
                    env!("CARGO_PKG_VERSION")
                );
                return Ok(None);
            }
            "--verbose" => cli.level = "verbose",
            "--trace" => cli.level = "trace",
            "--config" => cli.config = args.next().map(PathBuf::from),
            a if a.starts_with("--config=") => {
                std::fs::write(&a["--config=".len()..], settings::DEFAULTS)
                    .context("cannot write the configuration")?;
                return Ok(None);
            }
            a if a.starts_with("--logfile=") => {
                cli.logfile = Some(PathBuf::from(&a["--logfile=".len()..]))
            }
            a if a.starts_with("--logdir=") => {
                let name = format!(
                    "pacsnode.{}.log",
                    chrono::Local::now().format("%Y%m%d-%H%M%S")
                );
                cli.logfile = Some(Path::new(&a["--logdir=".len()..]).join(name));
            }
            a if a.starts_with("--") => eprintln!("ignoring unknown option {a}"),
            a => cli.config = Some(PathBuf::from(a)),
        }
    }
    Ok(Some(cli))
}

/// Two malloc arenas instead of glibc's eight per core: every blocking thread that built a
/// large answer kept its own arena of freed memory, which took the resident size of a query
/// mix during stability updates from ~80 to ~180 MB (measured); with two, ~90 MB, at the same
/// query times. Called before any thread starts.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc tunable; no thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> Result<()> {
    limit_malloc_arenas();
    let Some(cli) = parse_cli()? else {
        return Ok(());
    };
    let logfile = match &cli.logfile {
        Some(p) => Some(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => None,
    };
    let logs = Arc::new(LogLevels::init(cli.level, logfile));
    // Ports chosen by the system (port 0) are kept across a `/tools/reset`.
    let mut bound: Option<(u16, u16)> = None;
    loop {
        let mut settings = Settings::load(cli.config.as_deref())?;
        settings.validate()?;
        if let Some((http, dicom)) = bound {
            if settings.http_port == 0 {
                settings.http_port = http;
            }
            if settings.dicom_port == 0 {
                settings.dicom_port = dicom;
            }
        }
        let (control, http, dicom) =
            actix::System::new().block_on(run(Startup::load(settings)?, logs.clone()))?;
        bound = Some((http, dicom));
        if control == Control::Stop {
            tracing::info!("pacsnode has stopped");
            return Ok(());
        }
        tracing::info!("restarting pacsnode");
    }
}

fn private_dictionary(settings: &Settings) -> PrivateDictionary {
    let mut dict = PrivateDictionary::new();
    if settings
        .raw
        .get("LoadPrivateDictionary")
        .and_then(Value::as_bool)
        .unwrap_or(true)
    {
        // DCMTK's dictionaries, when installed, give the names Orthanc shows for private tags.
        if let Ok(dirs) = std::fs::read_dir("/usr/share") {
            for dir in dirs
                .flatten()
                .filter(|d| d.file_name().to_string_lossy().starts_with("libdcmtk"))
            {
                for file in ["dicom.dic", "private.dic"] {
                    if let Ok(text) = std::fs::read_to_string(dir.path().join(file)) {
                        dict.add_dcmtk_dic(&text);
                    }
                }
            }
        }
    }
    dict.add_orthanc_config(&Value::Object(settings.dictionary.clone()));
    dict
}

/// What is read from the disk before the actors start (outside the async runtime).
struct Startup {
    settings: Arc<Settings>,
    storage: StorageArea,
    dictionary: PrivateDictionary,
    lua_scripts: Vec<String>,
}

impl Startup {
    fn load(settings: Settings) -> Result<Startup> {
        let storage = StorageArea::new(&settings.storage_directory, settings.sync_storage_area)
            .with_context(|| {
                format!(
                    "cannot open the storage area {}",
                    settings.storage_directory.display()
                )
            })?;
        Ok(Startup {
            dictionary: private_dictionary(&settings),
            lua_scripts: lua_scripts(&settings),
            storage,
            settings: Arc::new(settings),
        })
    }
}

/// Starts everything, serves until asked to stop or restart, then stops in order.
async fn run(startup: Startup, logs: Arc<LogLevels>) -> Result<(Control, u16, u16)> {
    let Startup {
        settings,
        storage,
        dictionary,
        lua_scripts,
    } = startup;
    let dictionary = Arc::new(dictionary);
    let (writer, reader) = index::open(&settings.index_directory, 8)
        .await
        .context("cannot open the index")?;
    seed_remotes(&settings, &writer, &reader).await?;
    let default_encoding =
        Encoding::from_orthanc_name(&settings.default_encoding).unwrap_or(Encoding::Latin1);
    let runtime = Arc::new(RuntimeState {
        default_encoding: Arc::new(RwLock::new(default_encoding)),
        accepted_transfer_syntaxes: RwLock::new(transfer_syntax_patterns(
            &settings.accepted_transfer_syntaxes,
        )),
        scp: Arc::new(LiveSettings::default()),
    });
    let patterns = transfer_syntax_patterns(&settings.accepted_transfer_syntaxes);
    *runtime
        .scp
        .accepted_transfer_syntaxes
        .write()
        .unwrap_or_else(|e| e.into_inner()) = expand_syntaxes(&patterns);
    runtime
        .scp
        .accept_unknown_sop_classes
        .store(settings.unknown_sop_class_accepted, Ordering::Relaxed);
    let lua = LuaActor::start(lua_scripts);
    let ingest = IngestActor::start(
        storage.clone(),
        writer.clone(),
        IngestSettings {
            compress: settings.storage_compression,
            overwrite: settings.overwrite_instances,
            limits: StorageLimits {
                max_bytes: settings.maximum_storage_size * 1024 * 1024,
                max_patients: settings.maximum_patient_count,
                recycle: !settings.maximum_storage_mode.eq_ignore_ascii_case("Reject"),
            },
            stable_age_ms: settings.stable_age as i64 * 1000,
            default_encoding: runtime.default_encoding.clone(),
            concurrency: settings.pacsnode_ingest_concurrency,
            lua: Some(lua.clone()),
        },
    );
    pacsnode_actors::recovery::recover(&storage, &reader, &writer, &ingest)
        .await
        .context("cannot recover the instances of the last run")?;
    let jobs = pacsnode_actors::jobs::start(
        JobsConfig {
            concurrent: settings.concurrent_jobs.max(1),
            history: settings.jobs_history_size,
            save: settings.save_jobs,
            outputs_kept: settings.media_archive_size.max(1),
            outputs_dir: settings.index_directory.join("job-outputs"),
        },
        reader.clone(),
        writer.clone(),
        storage.clone(),
        Some(ingest.clone()),
    )
    .await
    .context("cannot start the job queue")?;
    let reports = Arc::new(pacsnode_actors::commitment_reports::CommitmentReports::new(
        settings.raw["StorageCommitmentReportsSize"]
            .as_u64()
            .unwrap_or(100) as usize,
    ));
    let dicom = if settings.dicom_server_enabled {
        let config = scp_config(&settings, &runtime);
        let find = dicom_find::CFind {
            reader: reader.clone(),
            dictionary: dictionary.clone(),
            settings: settings.clone(),
            default_encoding: runtime.default_encoding.clone(),
        };
        let retrieve = Arc::new(dicom_move::CMove {
            reader: reader.clone(),
            jobs: jobs.clone(),
            settings: settings.clone(),
            storage: storage.clone(),
        });
        let services = pacsnode_actors::dicom_scp::Services {
            find: Some(Arc::new(find)),
            moves: Some(retrieve.clone()),
            gets: Some(retrieve),
            commitment: Some(Arc::new(storage_commitment::Commitment {
                reader: reader.clone(),
                settings: settings.clone(),
                reports: reports.clone(),
            })),
            access: Some(Arc::new(dicom_access::Access {
                reader: reader.clone(),
                settings: settings.clone(),
            })),
        };
        let server = DicomServer::start(settings.dicom_port, config, ingest.clone(), services)
            .with_context(|| format!("cannot listen on DICOM port {}", settings.dicom_port))?;
        Some(server)
    } else {
        None
    };
    let changes = ChangesActor::new(writer.clone(), Duration::from_millis(500)).start();
    let (control_tx, mut control_rx) = tokio::sync::mpsc::channel(4);
    let state = web::Data::new(AppState {
        settings: settings.clone(),
        reader,
        writer,
        ingest,
        storage,
        lua: lua.addr.clone(),
        preview: pacsnode_actors::preview::PreviewActor::start(2),
        logs,
        runtime,
        dictionary,
        control: control_tx,
        chunks: Default::default(),
        jobs,
        queries: pacsnode_actors::queries::QueryArchive::new(settings.query_retrieve_size()),
        commitments: reports,
    });
    let compress = settings.http_compression_enabled;
    let keep_alive = if settings.keep_alive {
        actix_web::http::KeepAlive::Timeout(Duration::from_secs(settings.keep_alive_timeout.max(1)))
    } else {
        actix_web::http::KeepAlive::Disabled
    };
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(settings.http_threads_count.max(1));
    let app_state = state.clone();
    let no_delay = settings.tcp_no_delay;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
            .wrap(Condition::new(compress, Compress::default()))
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .wrap(from_fn(rest::middleware::orthanc))
            .configure(rest::configure)
            .default_service(web::to(rest::middleware::unknown_route))
    })
    .workers(workers)
    // `TcpNoDelay` (Orthanc's default: true). Without it the tail of a large answer waited
    // for the client's delayed ACK: 40 ms more on a 1 MB find, one time in two.
    .on_connect(move |conn, _| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(no_delay);
        }
    })
    .keep_alive(keep_alive)
    .client_request_timeout(Duration::from_secs(10))
    .client_disconnect_timeout(Duration::from_secs(1))
    .shutdown_timeout(2)
    .disable_signals();
    let address = ("0.0.0.0", settings.http_port);
    let server = match ssl_config(&settings)? {
        // `SslEnabled`: HTTPS on the same port, as Orthanc.
        Some(tls) => server.bind_rustls_0_23(address, tls),
        None => server.bind(address),
    }
    .with_context(|| format!("cannot listen on HTTP port {}", settings.http_port))?;
    let port = server
        .addrs()
        .first()
        .map_or(settings.http_port, |a| a.port());
    let server = server.run();
    let handle = server.handle();
    let dicom_port = dicom.as_ref().map_or(0, |d| d.port);
    tracing::info!("HTTP server listening on port {port}, DICOM server on port {dicom_port}");
    println!("pacsnode ready: HTTP port {port} DICOM port {dicom_port}");
    let server_task = actix_web::rt::spawn(server);
    let control = tokio::select! {
        c = control_rx.recv() => c.unwrap_or(Control::Stop),
        _ = stop_signal() => Control::Stop,
    };
    handle.stop(true).await;
    let _ = server_task.await;
    drop(dicom);
    drop(changes);
    if let Err(e) = pacsnode_actors::recovery::forget_folders(&state.writer).await {
        tracing::warn!("final index commit: {e}");
    }
    drop(state);
    let dir = settings.index_directory.clone();
    let checkpoint = tokio::task::spawn_blocking(move || index::checkpoint(&dir)).await;
    if let Ok(Err(e)) = checkpoint {
        tracing::warn!("final index checkpoint: {e}");
    }
    Ok((control, port, dicom_port))
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn scp_config(settings: &Settings, runtime: &RuntimeState) -> ScpConfig {
    let live = runtime.scp.clone();
    ScpConfig {
        aet: settings.dicom_aet.clone(),
        check_called_aet: settings.dicom_check_called_aet,
        accepted_transfer_syntaxes: live
            .accepted_transfer_syntaxes
            .read()
            .map(|v| v.clone())
            .unwrap_or_default(),
        accept_unknown_sop_classes: live.accept_unknown_sop_classes.load(Ordering::Relaxed),
        max_pdu_length: settings.maximum_pdu_length,
        // Set when the server starts with C-FIND and C-MOVE handlers.
        find: false,
        moves: false,
        gets: false,
        commitment: false,
        timeout: Duration::from_secs(settings.dicom_scp_timeout),
        max_associations: settings.dicom_threads_count.max(1),
        live: Some(live),
    }
}

fn transfer_syntax_patterns(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec!["1.2.840.10008.1.*".into()],
    }
}

fn lua_scripts(settings: &Settings) -> Vec<String> {
    settings
        .lua_scripts
        .iter()
        .filter_map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| tracing::error!("cannot read Lua script {p}: {e}"))
                .ok()
        })
        .collect()
}

/// Puts the configured modalities and peers into the database (unless they are edited there).
async fn seed_remotes(
    settings: &Settings,
    writer: &IndexWriter,
    reader: &index::IndexReader,
) -> Result<()> {
    let lists = [
        (
            RemoteTable::Modalities,
            &settings.dicom_modalities,
            settings.dicom_modalities_in_database,
        ),
        (
            RemoteTable::Peers,
            &settings.orthanc_peers,
            settings.orthanc_peers_in_database,
        ),
    ];
    for (table, configured, in_database) in lists {
        let existing = reader.remotes(table).await?;
        if in_database && !existing.is_empty() {
            continue;
        }
        let mut entries = Vec::new();
        for (name, v) in configured {
            let normalized = match table {
                RemoteTable::Modalities => rest::remotes::normalize_modality(v),
                RemoteTable::Peers => rest::remotes::normalize_peer(v),
            };
            match normalized {
                Ok(n) => entries.push((name.clone(), n)),
                Err(e) => tracing::warn!("ignoring the configuration of {name}: {e}"),
            }
        }
        let stale: Vec<String> = existing.into_iter().map(|(n, _)| n).collect();
        writer
            .write(move |c| {
                for name in &stale {
                    index::write::delete_remote(c, table, name)?;
                }
                for (name, v) in &entries {
                    index::write::put_remote(c, table, name, v)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(())
}

/// The TLS configuration of `SslEnabled` (`SslCertificate`: certificate chain and private
/// key in one PEM file).
fn ssl_config(settings: &Settings) -> Result<Option<rustls::ServerConfig>> {
    if !settings
        .raw
        .get("SslEnabled")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
    {
        return Ok(None);
    }
    let path = settings
        .raw
        .get("SslCertificate")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("certificate.pem");
    pacsnode_actors::tls::server_config(std::path::Path::new(path))
        .map(Some)
        .map_err(|e| anyhow::anyhow!("SslEnabled: {e}"))
}
