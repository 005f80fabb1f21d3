//! The reports of the storage commitments we asked for (`/storage-commitment/{id}`): pending
//! until the remote's N-EVENT-REPORT arrives. In memory, the `StorageCommitmentReportsSize`
//! most recent ones, as Orthanc keeps them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::dimse::commitment::CommitmentResult;

/// One transaction: the remote asked, and its answer once it came.
#[derive(Debug, Clone)]
pub struct Report {
    pub remote_aet: String,
    pub result: Option<CommitmentResult>,
}

#[derive(Default)]
struct Reports {
    order: VecDeque<String>,
    all: HashMap<String, Report>,
}

/// The archive of storage commitment reports.
pub struct CommitmentReports {
    capacity: usize,
    inner: Mutex<Reports>,
}

impl CommitmentReports {
    pub fn new(capacity: usize) -> Self {
        CommitmentReports {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reports> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new pending transaction with `remote_aet`.
    pub fn pending(&self, transaction: &str, remote_aet: &str) {
        let mut r = self.lock();
        while r.order.len() >= self.capacity {
            if let Some(old) = r.order.pop_front() {
                r.all.remove(&old);
            }
        }
        r.order.push_back(transaction.to_string());
        let report = Report {
            remote_aet: remote_aet.to_string(),
            result: None,
        };
        r.all.insert(transaction.to_string(), report);
    }

    /// The remote's answer; ignored for a transaction we do not know.
    pub fn complete(&self, transaction: &str, result: CommitmentResult) {
        if let Some(report) = self.lock().all.get_mut(transaction) {
            report.result = Some(result);
        }
    }

    pub fn get(&self, transaction: &str) -> Option<Report> {
        self.lock().all.get(transaction).cloned()
    }
}
