//! Logs through `tracing`, with Orthanc's verbosity levels (`default`, `verbose`, `trace`)
//! switchable at run time, globally and per category (`/tools/log-level[-{category}]`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

/// Orthanc's log categories and the tracing targets they cover.
pub const CATEGORIES: &[(&str, &str)] = &[
    ("generic", "pacsnode"),
    ("plugins", "pacsnode::plugins"),
    ("http", "pacsnode::rest"),
    ("dicom", "pacsnode_actors::dicom"),
    ("sqlite", "sqlx"),
    ("jobs", "pacsnode_actors::jobs"),
    ("lua", "pacsnode_actors::lua"),
];

/// The run-time log levels.
pub struct LogLevels {
    handle: reload::Handle<EnvFilter, Registry>,
    levels: Mutex<BTreeMap<&'static str, &'static str>>,
}

fn directive(level: &str) -> &'static str {
    match level {
        "verbose" => "debug",
        "trace" => "trace",
        _ => "info",
    }
}

/// Parses an Orthanc verbosity name.
pub fn parse_level(s: &str) -> Option<&'static str> {
    ["default", "verbose", "trace"]
        .into_iter()
        .find(|l| *l == s)
}

impl LogLevels {
    /// Installs the global subscriber, writing to stderr or to `logfile`.
    pub fn init(level: &'static str, logfile: Option<std::fs::File>) -> LogLevels {
        let levels: BTreeMap<_, _> = CATEGORIES.iter().map(|(c, _)| (*c, level)).collect();
        let (filter, handle) = reload::Layer::new(build_filter(&levels));
        let registry = tracing_subscriber::registry().with(filter);
        match logfile {
            Some(file) => registry
                .with(fmt::layer().with_ansi(false).with_writer(Mutex::new(file)))
                .init(),
            None => registry
                .with(fmt::layer().with_writer(std::io::stderr))
                .init(),
        }
        LogLevels {
            handle,
            levels: Mutex::new(levels),
        }
    }

    /// The level of a category, or the main level (`None`).
    pub fn get(&self, category: Option<&str>) -> Option<&'static str> {
        let levels = self.levels.lock().ok()?;
        match category {
            Some(c) => levels.get(c).copied(),
            None => levels.get("generic").copied(),
        }
    }

    /// Sets the level of a category, or of all of them (`None`).
    pub fn set(&self, category: Option<&str>, level: &'static str) {
        let Ok(mut levels) = self.levels.lock() else {
            return;
        };
        for (c, l) in levels.iter_mut() {
            if category.is_none_or(|cat| cat == *c) {
                *l = level;
            }
        }
        let _ = self.handle.reload(build_filter(&levels));
    }
}

fn build_filter(levels: &BTreeMap<&'static str, &'static str>) -> EnvFilter {
    let mut spec = String::from("warn,actix_server=warn");
    for (cat, target) in CATEGORIES {
        let level = directive(levels.get(cat).copied().unwrap_or("default"));
        spec.push_str(&format!(",{target}={level}"));
        if *cat == "generic" {
            spec.push_str(&format!(",pacsnode_actors={level}"));
        }
        if *cat == "sqlite" && level == "info" {
            spec.push_str(",sqlx=warn");
        }
    }
    EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"))
}
