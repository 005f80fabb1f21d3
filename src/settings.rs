//! Orthanc-format configuration: JSON with `//` and `/* */` comments, `${VAR}` environment
//! substitution, a file or a folder of `.json` files merged together, layered over the
//! compiled-in defaults of `settings/defaults.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The compiled-in defaults (Orthanc's option names and default values).
pub const DEFAULTS: &str = include_str!("../settings/defaults.json");

/// The options pacsnode reads, with Orthanc's names. Everything else stays in `raw`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Settings {
    pub name: String,
    pub storage_directory: PathBuf,
    pub index_directory: PathBuf,
    pub storage_compression: bool,
    pub maximum_storage_size: u64,
    pub maximum_patient_count: u64,
    pub maximum_storage_mode: String,
    pub http_port: u16,
    pub http_describe_errors: bool,
    pub http_compression_enabled: bool,
    pub dicom_aet: String,
    pub dicom_port: u16,
    pub dicom_server_enabled: bool,
    pub dicom_scu_timeout: u64,
    pub dicom_scp_timeout: u64,
    pub dicom_threads_count: usize,
    pub dicom_check_called_aet: bool,
    pub maximum_pdu_length: u32,
    pub default_encoding: String,
    pub accepted_transfer_syntaxes: Value,
    pub unknown_sop_class_accepted: bool,
    pub remote_access_allowed: bool,
    pub authentication_enabled: Option<bool>,
    pub registered_users: BTreeMap<String, String>,
    pub dicom_modalities: Map<String, Value>,
    pub dicom_modalities_in_database: bool,
    pub orthanc_peers: Map<String, Value>,
    pub orthanc_peers_in_database: bool,
    pub user_metadata: BTreeMap<String, i64>,
    pub user_content_type: Map<String, Value>,
    pub stable_age: u64,
    pub keep_alive: bool,
    pub keep_alive_timeout: u64,
    pub tcp_no_delay: bool,
    pub http_threads_count: usize,
    pub overwrite_instances: bool,
    pub execute_lua_enabled: bool,
    pub http_request_timeout: u64,
    pub sync_storage_area: bool,
    pub check_revisions: bool,
    pub concurrent_jobs: usize,
    pub jobs_history_size: usize,
    pub save_jobs: bool,
    pub media_archive_size: usize,
    pub dictionary: Map<String, Value>,
    pub lua_scripts: Vec<String>,
    pub database_server_identifier: String,
    pub ingest_transcoding: String,
    pub pacsnode_maximum_request_body_size: u64,
    pub pacsnode_maximum_zip_uncompressed_size: u64,
    pub pacsnode_maximum_zip_ratio: u64,
    pub pacsnode_ingest_concurrency: usize,
    pub pacsnode_allow_insecure_remote_access: bool,
    /// The whole merged configuration, as Orthanc's `GetOrthancConfiguration` sees it.
    #[serde(skip)]
    pub raw: Map<String, Value>,
}

impl Settings {
    /// `LimitFindInstances` for instances, `LimitFindResults` otherwise (0: no limit).
    pub fn limit_find_results(&self, level: pacsnode_actors::model::Level) -> u64 {
        let key = if level == pacsnode_actors::model::Level::Instance {
            "LimitFindInstances"
        } else {
            "LimitFindResults"
        };
        self.raw.get(key).and_then(Value::as_u64).unwrap_or(0)
    }

    /// Loads the defaults, then the user's file or folder (if any).
    pub fn load(path: Option<&Path>) -> Result<Settings> {
        let mut merged = match parse_json_text(DEFAULTS)? {
            Value::Object(m) => m,
            _ => bail!("the default settings are not a JSON object"),
        };
        let known: Vec<String> = merged.keys().cloned().collect();
        if let Some(path) = path {
            for (key, value) in read_user_config(path)? {
                if !known.contains(&key) {
                    tracing::warn!("unknown configuration option ignored: {key}");
                }
                merged.insert(key, value);
            }
        }
        Self::from_map(merged)
    }

    pub fn from_map(merged: Map<String, Value>) -> Result<Settings> {
        let mut settings: Settings = serde_json::from_value(Value::Object(merged.clone()))
            .context("invalid configuration")?;
        settings.raw = merged;
        Ok(settings)
    }

    /// `LogExportedResources`: stores to modalities and peers are listed in `/exports`.
    pub fn log_exported_resources(&self) -> bool {
        self.raw
            .get("LogExportedResources")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// How many queries `/queries` keeps (`QueryRetrieveSize`).
    pub fn query_retrieve_size(&self) -> usize {
        self.raw
            .get("QueryRetrieveSize")
            .and_then(Value::as_u64)
            .unwrap_or(100) as usize
    }

    /// Orthanc's rule: authentication follows RemoteAccessAllowed unless set explicitly.
    pub fn authentication(&self) -> bool {
        self.authentication_enabled
            .unwrap_or(self.remote_access_allowed)
    }

    /// Refuses what Orthanc 1.13 refuses: remote access without any authentication.
    pub fn validate(&self) -> Result<()> {
        let open = self.remote_access_allowed
            && (!self.authentication() || self.registered_users.is_empty());
        if open
            && !self.pacsnode_allow_insecure_remote_access
            && self.authentication_enabled != Some(false)
        {
            bail!(
                "RemoteAccessAllowed is true but no RegisteredUsers are defined: refusing to start \
                 (set AuthenticationEnabled to false explicitly to allow unauthenticated remote access)"
            );
        }
        Ok(())
    }
}

/// Reads a configuration file, or every `.json` file of a folder, merged.
pub fn read_user_config(path: &Path) -> Result<Map<String, Value>> {
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let p = entry?.path();
            if p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut merged = Map::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read configuration file {}", file.display()))?;
        let value = parse_json_text(&substitute_env(&text))
            .with_context(|| format!("bad configuration file {}", file.display()))?;
        let Value::Object(map) = value else {
            bail!("configuration file {} is not a JSON object", file.display());
        };
        for (k, v) in map {
            if merged.contains_key(&k) {
                bail!("option {k} is defined twice in the configuration folder");
            }
            merged.insert(k, v);
        }
    }
    Ok(merged)
}

/// Parses JSON with `//` and `/* */` comments.
pub fn parse_json_text(text: &str) -> Result<Value> {
    Ok(serde_json::from_str(&strip_comments(text))?)
}

/// Removes comments outside strings, keeping line structure for error positions.
pub fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let (mut i, mut in_str) = (0, false);
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1]);
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
            out.push(c);
        } else if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                if b[i] == b'\n' {
                    out.push(b'\n');
                }
                i += 1;
            }
            i += 2;
            continue;
        } else {
            out.push(c);
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Replaces `${VAR}` (and `${VAR:-default}`) by the environment variable's value.
pub fn substitute_env(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, d),
            None => (expr, ""),
        };
        out.push_str(&std::env::var(name).unwrap_or_else(|_| default.to_string()));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let s = Settings::load(None).unwrap();
        assert_eq!(s.http_port, 8042);
        assert_eq!(s.dicom_aet, "ORTHANC");
        assert!(!s.authentication());
    }

    #[test]
    fn comments_are_stripped_outside_strings() {
        let v = parse_json_text("{ // c\n \"a\": \"x//y\", /* b\n */ \"b\": 1 }").unwrap();
        assert_eq!(v["a"], "x//y");
        assert_eq!(v["b"], 1);
    }

    #[test]
    fn env_is_substituted() {
        std::env::set_var("PACSNODE_TEST_VAR", "42");
        assert_eq!(
            substitute_env("a ${PACSNODE_TEST_VAR} ${NOPE_X:-d}"),
            "a 42 d"
        );
    }

    #[test]
    fn insecure_remote_access_is_refused() {
        let mut m = match parse_json_text(DEFAULTS).unwrap() {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        m.insert("RemoteAccessAllowed".into(), Value::Bool(true));
        assert!(Settings::from_map(m.clone()).unwrap().validate().is_err());
        m.insert("AuthenticationEnabled".into(), Value::Bool(false));
        assert!(Settings::from_map(m).unwrap().validate().is_ok());
    }
}
