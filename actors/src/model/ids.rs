//! Orthanc's resource identifiers: SHA-1 of the DICOM identifiers joined with `|`,
//! written as five groups of 8 hex digits (DicomInstanceHasher in Orthanc).

use sha1::{Digest, Sha1};

/// Formats the SHA-1 of `s` as Orthanc does: `xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx`.
pub fn orthanc_hash(s: &str) -> String {
    let digest = Sha1::digest(s.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = String::with_capacity(44);
    for (i, chunk) in hex.as_bytes().chunks(8).enumerate() {
        if i > 0 {
            out.push('-');
        }
        out.push_str(std::str::from_utf8(chunk).expect("hex is ascii"));
    }
    out
}

/// The four Orthanc identifiers of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIds {
    pub patient: String,
    pub study: String,
    pub series: String,
    pub instance: String,
}

impl InstanceIds {
    /// Computes the ids from the (already trimmed) DICOM identifiers.
    pub fn compute(patient_id: &str, study_uid: &str, series_uid: &str, sop_uid: &str) -> Self {
        let p = patient_id.to_string();
        let st = format!("{p}|{study_uid}");
        let se = format!("{st}|{series_uid}");
        let i = format!("{se}|{sop_uid}");
        InstanceIds {
            patient: orthanc_hash(&p),
            study: orthanc_hash(&st),
            series: orthanc_hash(&se),
            instance: orthanc_hash(&i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_ct_ids_match_orthanc() {
        let ids = InstanceIds::compute(
            "ozp00SjY2xG",
            "1.2.840.113619.2.176.2025.1499492.7391.1171285944.390",
            "1.2.840.113619.2.176.2025.1499492.7391.1171285944.394",
            "x",
        );
        assert_eq!(ids.patient, "6816cb19-844d5aee-85245eba-28e841e6-2414fae2");
        assert_eq!(ids.study, "b9c08539-26f93bde-c81ab0d7-bffaf2cb-a4d0bdd0");
        assert_eq!(ids.series, "f2635388-f01d497a-15f7c06b-ad7dba06-c4c599fe");
        assert_eq!(
            orthanc_hash(""),
            "da39a3ee-5e6b4b0d-3255bfef-95601890-afd80709"
        );
    }
}
