//! Association negotiation on the SCP side (A-ASSOCIATE-RQ → AC or RJ).

use dicom_core::dictionary::{UidDictionary, UidType};
use dicom_dictionary_std::StandardSopClassDictionary;
use dicom_ul::pdu::{
    AssociationAC, AssociationRJ, AssociationRJResult, AssociationRJServiceUserReason,
    AssociationRJSource, AssociationRQ, Pdu, PresentationContextResult,
    PresentationContextResultReason, UserVariableItem,
};

use super::part10::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use super::scp::ScpConfig;

/// Verification SOP Class.
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// Patient Root and Study Root Query/Retrieve Information Model - FIND.
pub const PATIENT_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.1.1";
pub const STUDY_ROOT_FIND: &str = "1.2.840.10008.5.1.4.1.2.2.1";
/// Patient Root and Study Root Query/Retrieve Information Model - MOVE.
pub const PATIENT_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.1.2";
pub const STUDY_ROOT_MOVE: &str = "1.2.840.10008.5.1.4.1.2.2.2";
/// Patient Root and Study Root Query/Retrieve Information Model - GET.
pub const PATIENT_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.1.3";
pub const STUDY_ROOT_GET: &str = "1.2.840.10008.5.1.4.1.2.2.3";
/// DICOM application context name.
pub const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";
/// Implicit VR Little Endian.
pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian.
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// Removes the padding that may trail a UID in a PDU.
pub fn trim_uid(uid: &str) -> &str {
    uid.trim_end_matches(['\0', ' ']).trim_start()
}

/// Whether `uid` is a storage SOP class of the standard dictionary: every
/// 1.2.840.10008.5.1.4.1.1.* SOP class, plus the other "... Storage" classes
/// (hanging protocols, color palettes, implant templates...).
pub fn is_storage_sop_class(uid: &str) -> bool {
    let Some(entry) = StandardSopClassDictionary.by_uid(uid) else {
        return false;
    };
    if !matches!(entry.r#type, UidType::SopClass) {
        return false;
    }
    let name = entry.name.trim_end_matches(" (Retired)");
    uid.starts_with("1.2.840.10008.5.1.4.1.1.")
        || (name.ends_with("Storage") && !name.contains("Commitment"))
}

/// A presentation context accepted by negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedContext {
    pub id: u8,
    pub abstract_syntax: String,
    pub transfer_syntax: String,
}

/// Outcome of the negotiation.
#[derive(Debug)]
pub enum Decision {
    /// Send `ac`; `contexts` are the accepted presentation contexts.
    Accept {
        ac: Pdu,
        contexts: Vec<AcceptedContext>,
        peer_max_pdu: u32,
    },
    /// Send `rj` and close; `reason` is for the logs.
    Reject { rj: Pdu, reason: String },
}

/// A permanent A-ASSOCIATE-RJ by the service user.
pub fn reject(reason: AssociationRJServiceUserReason) -> Pdu {
    Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Permanent,
        source: AssociationRJSource::ServiceUser(reason),
    })
}

/// The first proposed transfer syntax that we accept (the requestor's order
/// of preference is honoured, so `storescu -xd` really sends deflated data).
fn choose_ts(proposed: &[String], accepted: &[String], verification: bool) -> Option<String> {
    proposed.iter().map(|t| trim_uid(t)).find_map(|ts| {
        let ok = accepted.iter().any(|a| a == ts)
            || (verification && (ts == IMPLICIT_LE || ts == EXPLICIT_LE));
        ok.then(|| ts.to_string())
    })
}

/// The SCU/SCP role selections the requestor proposed, all accepted: a C-GET requestor takes
/// the SCP role of the storage classes, to receive the instances on its association.
fn role_selections(rq: &AssociationRQ) -> Vec<UserVariableItem> {
    rq.user_variables
        .iter()
        .filter(|uv| matches!(uv, UserVariableItem::ScuScpRoleSelectionSubItem(..)))
        .cloned()
        .collect()
}

/// Negotiates an association request against the SCP configuration.
pub fn negotiate(rq: &AssociationRQ, config: &ScpConfig) -> Decision {
    if rq.protocol_version & 1 == 0 {
        let reason = format!("unsupported protocol version {}", rq.protocol_version);
        let rj = reject(AssociationRJServiceUserReason::NoReasonGiven);
        return Decision::Reject { rj, reason };
    }
    if trim_uid(&rq.application_context_name) != APPLICATION_CONTEXT {
        let reason = format!(
            "unknown application context {}",
            rq.application_context_name
        );
        let rj = reject(AssociationRJServiceUserReason::ApplicationContextNameNotSupported);
        return Decision::Reject { rj, reason };
    }
    let called = rq.called_ae_title.trim();
    if config.check_called_aet && !called.eq_ignore_ascii_case(config.aet.trim()) {
        let reason = format!("called AET {called:?} is not ours ({:?})", config.aet);
        let rj = reject(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        return Decision::Reject { rj, reason };
    }
    let mut peer_max_pdu = 16384;
    for uv in &rq.user_variables {
        if let UserVariableItem::MaxLength(n) = uv {
            peer_max_pdu = *n;
        }
    }
    let mut results = Vec::with_capacity(rq.presentation_contexts.len());
    let mut contexts = Vec::new();
    for pc in &rq.presentation_contexts {
        let abstract_syntax = trim_uid(&pc.abstract_syntax);
        let query = (config.find && matches!(abstract_syntax, PATIENT_ROOT_FIND | STUDY_ROOT_FIND))
            || (config.moves && matches!(abstract_syntax, PATIENT_ROOT_MOVE | STUDY_ROOT_MOVE))
            || (config.gets && matches!(abstract_syntax, PATIENT_ROOT_GET | STUDY_ROOT_GET));
        // Queries and echoes go in uncompressed little endian whatever is accepted for storage.
        let verification = abstract_syntax == VERIFICATION
            || query
            || (config.commitment && abstract_syntax == super::commitment::STORAGE_COMMITMENT);
        let known = verification
            || config.accept_unknown_sop_classes
            || is_storage_sop_class(abstract_syntax);
        let (reason, transfer_syntax) = if !known {
            (
                PresentationContextResultReason::AbstractSyntaxNotSupported,
                None,
            )
        } else {
            match choose_ts(
                &pc.transfer_syntaxes,
                &config.accepted_transfer_syntaxes,
                verification,
            ) {
                Some(ts) => (PresentationContextResultReason::Acceptance, Some(ts)),
                None => (
                    PresentationContextResultReason::TransferSyntaxesNotSupported,
                    None,
                ),
            }
        };
        if let Some(ts) = &transfer_syntax {
            contexts.push(AcceptedContext {
                id: pc.id,
                abstract_syntax: abstract_syntax.to_string(),
                transfer_syntax: ts.clone(),
            });
        }
        results.push(PresentationContextResult {
            id: pc.id,
            reason,
            transfer_syntax: transfer_syntax.unwrap_or_else(|| IMPLICIT_LE.to_string()),
        });
    }
    let ac = Pdu::AssociationAC(AssociationAC {
        protocol_version: 1,
        calling_ae_title: rq.calling_ae_title.clone(),
        called_ae_title: rq.called_ae_title.clone(),
        application_context_name: APPLICATION_CONTEXT.to_string(),
        presentation_contexts: results,
        user_variables: vec![
            UserVariableItem::MaxLength(config.max_pdu_length),
            UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_string()),
            UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION_NAME.to_string()),
        ]
        .into_iter()
        .chain(role_selections(rq))
        .collect(),
    });
    Decision::Accept {
        ac,
        contexts,
        peer_max_pdu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_ul::pdu::PresentationContextProposed;

    fn config() -> ScpConfig {
        ScpConfig {
            aet: "ORTHANC".into(),
            check_called_aet: true,
            accepted_transfer_syntaxes: vec![EXPLICIT_LE.into(), IMPLICIT_LE.into()],
            accept_unknown_sop_classes: false,
            ..ScpConfig::default()
        }
    }

    fn rq(called: &str, pcs: &[(u8, &str, &[&str])]) -> AssociationRQ {
        AssociationRQ {
            protocol_version: 1,
            calling_ae_title: "SCU".into(),
            called_ae_title: called.into(),
            application_context_name: APPLICATION_CONTEXT.into(),
            presentation_contexts: pcs
                .iter()
                .map(|(id, a, ts)| PresentationContextProposed {
                    id: *id,
                    abstract_syntax: a.to_string(),
                    transfer_syntaxes: ts.iter().map(|t| t.to_string()).collect(),
                })
                .collect(),
            user_variables: vec![UserVariableItem::MaxLength(32768)],
        }
    }

    #[test]
    fn storage_classes() {
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.1.1.2"));
        assert!(is_storage_sop_class("1.2.840.10008.5.1.4.38.1"));
        assert!(!is_storage_sop_class("1.2.840.10008.1.20.1"));
        assert!(!is_storage_sop_class("1.2.840.10008.5.1.4.1.2.2.1"));
        assert!(!is_storage_sop_class("1.2.3.4"));
    }

    #[test]
    fn per_context_results() {
        let ct = "1.2.840.10008.5.1.4.1.1.2";
        let find = "1.2.840.10008.5.1.4.1.2.2.1";
        let r = rq(
            "orthanc",
            &[
                (1, VERIFICATION, &[IMPLICIT_LE]),
                (3, ct, &[IMPLICIT_LE, EXPLICIT_LE]),
                (5, ct, &["1.2.840.10008.1.2.4.50"]),
                (7, find, &[IMPLICIT_LE]),
            ],
        );
        let Decision::Accept {
            contexts,
            peer_max_pdu,
            ac,
        } = negotiate(&r, &config())
        else {
            panic!("rejected");
        };
        assert_eq!(peer_max_pdu, 32768);
        assert_eq!(contexts.len(), 2);
        assert_eq!(contexts[1].transfer_syntax, IMPLICIT_LE); // requestor's preference
        let Pdu::AssociationAC(ac) = ac else { panic!() };
        let reasons: Vec<_> = ac
            .presentation_contexts
            .iter()
            .map(|p| p.reason.clone())
            .collect();
        assert_eq!(
            reasons[2],
            PresentationContextResultReason::TransferSyntaxesNotSupported
        );
        assert_eq!(
            reasons[3],
            PresentationContextResultReason::AbstractSyntaxNotSupported
        );
        let mut promiscuous = config();
        promiscuous.accept_unknown_sop_classes = true;
        let Decision::Accept { contexts, .. } = negotiate(&r, &promiscuous) else {
            panic!()
        };
        assert_eq!(contexts.len(), 3);
    }

    #[test]
    fn called_aet_check() {
        let r = rq("OTHER", &[(1, VERIFICATION, &[IMPLICIT_LE])]);
        assert!(matches!(negotiate(&r, &config()), Decision::Reject { .. }));
        let mut lax = config();
        lax.check_called_aet = false;
        assert!(matches!(negotiate(&r, &lax), Decision::Accept { .. }));
    }
}
