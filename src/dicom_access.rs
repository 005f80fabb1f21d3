//! Who may use the DICOM server, as Orthanc decides it: the `DicomAlwaysAllow*` options let
//! any AE send a kind of request; otherwise the calling AET must be a declared modality
//! (its host too with `DicomCheckModalityHost`) whose `Allow*` flag permits the request.
//! The modalities are read from the index at each request (they change through REST).

use std::sync::Arc;

use pacsnode_actors::dimse::{AccessHandler, Request, StoreContext};
use pacsnode_actors::index::{self, IndexReader, RemoteTable};
use serde_json::Value;

use crate::settings::Settings;

pub struct Access {
    pub reader: IndexReader,
    pub settings: Arc<Settings>,
}

impl Access {
    fn flag(&self, name: &str, default: bool) -> bool {
        self.settings.raw[name].as_bool().unwrap_or(default)
    }

    /// `DicomAlwaysAllow*` for this request (none for storage commitment).
    fn always(&self, request: Request) -> bool {
        match request {
            Request::Echo => self.flag("DicomAlwaysAllowEcho", true),
            Request::Store => self.flag("DicomAlwaysAllowStore", true),
            Request::Find => self.flag("DicomAlwaysAllowFind", false),
            Request::FindWorklist => self.flag("DicomAlwaysAllowFindWorklist", false),
            Request::Move => self.flag("DicomAlwaysAllowMove", false),
            Request::Get => self.flag("DicomAlwaysAllowGet", false),
            Request::NAction | Request::NEventReport => false,
        }
    }

    fn modalities(&self, aet: &str) -> Vec<Value> {
        modalities_with_aet(&self.reader, aet)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }
}

/// The declared modalities with this AE title, (name, configuration): case-insensitive, as
/// Orthanc compares AE titles by default. Read from the index (blocking).
pub fn modalities_with_aet(reader: &IndexReader, aet: &str) -> Vec<(String, Value)> {
    let all = reader
        .with_blocking(|c| index::remotes(c, RemoteTable::Modalities))
        .unwrap_or_default();
    all.into_iter()
        .filter(|(_, v)| {
            v["AET"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(aet))
        })
        .collect()
}

fn allow_flag(request: Request) -> &'static str {
    match request {
        Request::Echo => "AllowEcho",
        Request::Store => "AllowStore",
        Request::Find => "AllowFind",
        Request::FindWorklist => "AllowFindWorklist",
        Request::Move => "AllowMove",
        Request::Get => "AllowGet",
        Request::NAction => "AllowNAction",
        Request::NEventReport => "AllowEventReport",
    }
}

impl AccessHandler for Access {
    fn allowed_connection(&self, ctx: &StoreContext) -> bool {
        const ALL: [Request; 6] = [
            Request::Echo,
            Request::Store,
            Request::Find,
            Request::FindWorklist,
            Request::Move,
            Request::Get,
        ];
        if ALL.iter().any(|r| self.always(*r)) {
            return true;
        }
        let check_host = self.flag("DicomCheckModalityHost", false);
        self.modalities(&ctx.calling_aet)
            .iter()
            .any(|m| !check_host || m["Host"].as_str() == Some(ctx.remote_ip.as_str()))
    }

    fn allowed(&self, request: Request, ctx: &StoreContext) -> bool {
        if self.always(request) {
            return true;
        }
        let check_host = self.flag("DicomCheckModalityHost", false);
        let found = self.modalities(&ctx.calling_aet);
        let permits = |m: &Value| m[allow_flag(request)].as_bool().unwrap_or(true);
        let host_ok = |m: &Value| m["Host"].as_str() == Some(ctx.remote_ip.as_str());
        let allowed = match found.as_slice() {
            [] => false,
            [one] => (!check_host || host_ok(one)) && permits(one),
            // Several modalities share the AET: the one on this host, or all of them, decide.
            many => {
                many.iter().all(permits)
                    || (check_host && many.iter().any(|m| permits(m) && host_ok(m)))
            }
        };
        if !allowed {
            tracing::warn!(
                "DICOM {request:?} from AET {} on {} refused: not allowed by DicomModalities",
                ctx.calling_aet,
                ctx.remote_ip
            );
        }
        allowed
    }
}
