//! Orthanc peers over HTTP: sending instances (`/peers/{id}/store`, as a job), forwarding a
//! file as it came (`store-straight`), and asking a peer for its `/system`. The HTTP client
//! blocks: every call here runs on a blocking thread.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::jobs::{JobContext, JobDone, JobError};

/// A peer as configured (`OrthancPeers`, or `/peers/{id}` in the database).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Peer {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub http_headers: BTreeMap<String, String>,
    /// Seconds (0: `HttpTimeout`).
    pub timeout: u64,
    /// A client certificate for HTTPS (PEM files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_key_password: Option<String>,
    /// `HttpsVerifyPeers: false` and `HttpsCACertificates` (global options; kept with the
    /// jobs that use the peer).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_verify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// The global options of outgoing HTTP (`HttpTimeout`, `HttpsVerifyPeers`,
/// `HttpsCACertificates`).
#[derive(Debug, Clone)]
pub struct HttpClientOptions {
    pub timeout: u64,
    pub verify_peers: bool,
    pub ca_certificates: Option<String>,
}

/// Errors talking to a peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached, or timed out.
    #[error("cannot reach the peer {0}: {1}")]
    Unreachable(String, String),
    /// The peer answered an HTTP error.
    #[error("the peer {0} answered HTTP {1}: {2}")]
    Status(String, u16, String),
}

impl Peer {
    /// Reads a peer's configuration (the JSON kept for `/peers`).
    pub fn from_config(v: &Value, options: &HttpClientOptions) -> Peer {
        let mut p: Peer = serde_json::from_value(v.clone()).unwrap_or_default();
        if p.timeout == 0 {
            p.timeout = options.timeout;
        }
        p.skip_verify = !options.verify_peers;
        p.ca_certificates = options.ca_certificates.clone();
        p
    }

    /// The TLS settings of an `https://` peer.
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, PeerError> {
        if self
            .certificate_key_password
            .as_deref()
            .is_some_and(|p| !p.is_empty())
        {
            return Err(PeerError::Unreachable(
                self.url.clone(),
                "encrypted client keys (CertificateKeyPassword) are not supported".into(),
            ));
        }
        let tls = crate::tls::ClientTls {
            verify_peers: !self.skip_verify,
            ca_certificates: self.ca_certificates.as_ref().map(PathBuf::from),
            certificate: self.certificate_file.as_ref().map(|c| {
                (
                    c.into(),
                    self.certificate_key_file
                        .clone()
                        .unwrap_or_else(|| c.clone())
                        .into(),
                )
            }),
        };
        crate::tls::client_config(&tls)
            .map(Arc::new)
            .map_err(|e| PeerError::Unreachable(self.url.clone(), e))
    }

    fn request(&self, method: &str, path: &str) -> Result<ureq::Request, PeerError> {
        let mut agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(self.timeout.max(1)));
        if self.url.to_ascii_lowercase().starts_with("https://") {
            agent = agent.tls_config(self.tls()?);
        }
        let agent = agent.build();
        let mut req = agent.request(
            method,
            &format!("{}{}", self.url, path.trim_start_matches('/')),
        );
        if let Some(user) = &self.username {
            use base64::Engine;
            let pass = self.password.as_deref().unwrap_or("");
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req = req.set("Authorization", &format!("Basic {token}"));
        }
        for (k, v) in &self.http_headers {
            req = req.set(k, v);
        }
        Ok(req)
    }

    fn answer(&self, r: Result<ureq::Response, ureq::Error>) -> Result<Vec<u8>, PeerError> {
        match r {
            Ok(resp) => {
                let mut body = Vec::new();
                resp.into_reader()
                    .read_to_end(&mut body)
                    .map_err(|e| PeerError::Unreachable(self.url.clone(), e.to_string()))?;
                Ok(body)
            }
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                Err(PeerError::Status(
                    self.url.clone(),
                    code,
                    text.trim().to_string(),
                ))
            }
            Err(e) => Err(PeerError::Unreachable(self.url.clone(), e.to_string())),
        }
    }

    /// `GET {url}{path}` as JSON. Blocking.
    pub fn get_json(&self, path: &str) -> Result<Value, PeerError> {
        let body = self.answer(self.request("GET", path)?.call())?;
        serde_json::from_slice(&body)
            .map_err(|e| PeerError::Status(self.url.clone(), 200, format!("not JSON: {e}")))
    }

    /// `POST {url}instances` with a DICOM file (gzip-compressed when `compress`); answers
    /// the peer's JSON and the number of bytes sent. Blocking.
    pub fn post_instance(&self, dicom: &[u8], compress: bool) -> Result<(Value, u64), PeerError> {
        let mut req = self
            .request("POST", "instances")?
            .set("Content-Type", "application/dicom");
        let body = if compress {
            req = req.set("Content-Encoding", "gzip");
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(dicom)
                .and_then(|_| gz.finish())
                .map_err(|e| PeerError::Unreachable(self.url.clone(), e.to_string()))?
        } else {
            dicom.to_vec()
        };
        let sent = body.len() as u64;
        let answer = self.answer(req.send_bytes(&body))?;
        Ok((serde_json::from_slice(&answer).unwrap_or(Value::Null), sent))
    }
}

/// What a peer store job does.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PeerStoreRequest {
    /// The peer's symbolic name (for `/exports`).
    pub name: String,
    pub peer: Peer,
    pub resources: Vec<String>,
    pub compress: bool,
    /// Failed instances do not fail the job.
    pub permissive: bool,
    /// Record the resources in `/exports` (`LogExportedResources`).
    pub log_exports: bool,
    /// The transfer syntax to send the instances in (`Transcode`).
    pub transcode: Option<String>,
}

/// Sends every instance of the resources to the peer, one request each.
pub async fn run_store(req: PeerStoreRequest, ctx: JobContext) -> Result<JobDone, JobError> {
    let instances = crate::jobs::modality_store::instances_of(&ctx, &req.resources).await?;
    if req.log_exports {
        crate::jobs::modality_store::log_exports(&ctx, &req.name, &req.resources).await?;
    }
    let total = instances.len() as u64;
    let (peer, compress) = (req.peer.clone(), req.compress);
    let transcode = req.transcode.clone();
    let progress = ctx.clone();
    let (sent, failed) = tokio::task::spawn_blocking(move || {
        let (mut sent, mut failed) = (0u64, 0u64);
        for (k, (_, _, att)) in instances.into_iter().enumerate() {
            progress.check_cancel()?;
            let data = crate::jobs::modality_store::read_dicom(&progress, &att)?;
            let sent_data = match &transcode {
                Some(ts) => crate::transcode::transcode(&data, ts, None).map_err(|e| e.to_string()),
                None => Ok(data),
            };
            match sent_data
                .and_then(|d| peer.post_instance(&d, compress).map_err(|e| e.to_string()))
            {
                Ok((_, n)) => {
                    sent += n;
                }
                Err(e) if req.permissive => {
                    tracing::warn!("peer store: {e}");
                    failed += 1;
                }
                Err(e) => return Err(JobError::Failed(e.to_string())),
            }
            progress.set_progress(k as u64 + 1, total);
        }
        Ok((sent, failed))
    })
    .await
    .map_err(|e| JobError::Failed(e.to_string()))??;
    Ok(JobDone {
        content: json!({
            "Compress": req.compress,
            "Description": "REST API",
            "FailedInstancesCount": failed,
            "InstancesCount": total,
            "ParentResources": req.resources,
            "Peer": [req.peer.url, req.peer.username.unwrap_or_default(), ""],
            "Size": sent.to_string(),
        }),
        output: false,
    })
}
