//! Storage commitment on the server side: a remote's request is checked against the index
//! and answered with an N-EVENT-REPORT on an association to that remote (found among the
//! declared modalities by AE title); a remote's report completes the transaction we asked.

use std::sync::Arc;
use std::time::Duration;

use pacsnode_actors::commitment_reports::CommitmentReports;
use pacsnode_actors::dimse::commitment::{self, CommitmentHandler, CommitmentResult, Reference};
use pacsnode_actors::dimse::{RemoteAe, StoreContext};
use pacsnode_actors::find::{self, FindQuery};
use pacsnode_actors::index::{read, IndexError, IndexReader};
use pacsnode_actors::model::{Level, MetadataType};

use crate::settings::Settings;

/// Failure reasons of PS3.4 J.3.2.1.1: no such object instance, class/instance conflict.
const NO_SUCH_INSTANCE: u16 = 0x0112;
const CLASS_INSTANCE_CONFLICT: u16 = 0x0119;

pub struct Commitment {
    pub reader: IndexReader,
    pub settings: Arc<Settings>,
    pub reports: Arc<CommitmentReports>,
}

/// Which of the instances the index holds (with that SOP class).
pub fn check(reader: &IndexReader, refs: &[Reference]) -> Result<CommitmentResult, IndexError> {
    let refs = refs.to_vec();
    reader.with_blocking(move |c| {
        let mut result = CommitmentResult::default();
        for (class, instance) in refs {
            let mut q = FindQuery::new(Level::Instance);
            q.constraints.push(find::constraint(
                Level::Instance,
                (0x0008, 0x0018),
                &instance,
                true,
            ));
            let found = find::execute(c, &q).map_err(|e| IndexError::BadRequest(e.to_string()))?;
            let reason = match found.first() {
                None => Some(NO_SUCH_INSTANCE),
                Some((id, _)) => {
                    let stored = read::metadata(c, *id)?
                        .into_iter()
                        .find(|(k, _, _)| *k == MetadataType::SopClassUid as i64)
                        .map(|(_, v, _)| v);
                    (stored.as_deref() != Some(class.as_str())).then_some(CLASS_INSTANCE_CONFLICT)
                }
            };
            match reason {
                None => result.success.push((class, instance)),
                Some(r) => result.failures.push(((class, instance), r)),
            }
        }
        Ok(result)
    })
}

impl Commitment {
    /// The declared modality with this AE title.
    fn modality(&self, aet: &str) -> Option<RemoteAe> {
        let (_, config) = crate::dicom_access::modalities_with_aet(&self.reader, aet)
            .into_iter()
            .next()?;
        Some(RemoteAe {
            aet: config["AET"].as_str().unwrap_or(aet).to_string(),
            host: config["Host"].as_str().unwrap_or_default().to_string(),
            port: config["Port"].as_u64().unwrap_or(104) as u16,
            timeout: Duration::from_secs(self.settings.dicom_scu_timeout),
        })
    }
}

impl CommitmentHandler for Commitment {
    fn request(&self, transaction: String, refs: Vec<Reference>, ctx: &StoreContext) {
        let Some(remote) = self.modality(&ctx.calling_aet) else {
            return tracing::warn!(
                "storage commitment from {}, which is not a declared modality: no report",
                ctx.calling_aet
            );
        };
        let result = match check(&self.reader, &refs) {
            Ok(r) => r,
            Err(e) => return tracing::error!("storage commitment: {e}"),
        };
        let local = self.settings.dicom_aet.clone();
        // The report goes on an association of its own, once this one has answered.
        let spawned = std::thread::Builder::new()
            .name("storage-commitment".into())
            .spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                if let Err(e) = commitment::report(&local, &remote, &transaction, &result) {
                    tracing::warn!("storage commitment report to {}: {e}", remote.aet);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("storage commitment: cannot start the report: {e}");
        }
    }

    fn report(&self, transaction: String, result: CommitmentResult, _ctx: &StoreContext) {
        self.reports.complete(&transaction, result);
    }
}
