//! Transfer syntaxes: the ones DICOM defines, and Orthanc's `*` / `?` patterns of
//! `AcceptedTransferSyntaxes` expanded against them.

/// The transfer syntaxes DICOM knows (the 45 Orthanc mainline lists, retired JPEG processes
/// included), to expand wildcards of AcceptedTransferSyntaxes.
pub const KNOWN_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.52",
    "1.2.840.10008.1.2.4.53",
    "1.2.840.10008.1.2.4.54",
    "1.2.840.10008.1.2.4.55",
    "1.2.840.10008.1.2.4.56",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.58",
    "1.2.840.10008.1.2.4.59",
    "1.2.840.10008.1.2.4.60",
    "1.2.840.10008.1.2.4.61",
    "1.2.840.10008.1.2.4.62",
    "1.2.840.10008.1.2.4.63",
    "1.2.840.10008.1.2.4.64",
    "1.2.840.10008.1.2.4.65",
    "1.2.840.10008.1.2.4.66",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.94",
    "1.2.840.10008.1.2.4.95",
    "1.2.840.10008.1.2.4.100",
    "1.2.840.10008.1.2.4.101",
    "1.2.840.10008.1.2.4.102",
    "1.2.840.10008.1.2.4.103",
    "1.2.840.10008.1.2.4.104",
    "1.2.840.10008.1.2.4.105",
    "1.2.840.10008.1.2.4.106",
    "1.2.840.10008.1.2.4.107",
    "1.2.840.10008.1.2.4.108",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.6.1",
    "1.2.840.10008.1.2.6.2",
];

/// Matches `*` and `?` wildcards.
pub fn wildcard_match(pattern: &str, s: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), s.as_bytes())
}

/// The known transfer syntaxes that match any of the patterns.
pub fn expand_syntaxes(patterns: &[String]) -> Vec<String> {
    KNOWN_SYNTAXES
        .iter()
        .filter(|ts| patterns.iter().any(|p| wildcard_match(p, ts)))
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_expand() {
        assert!(wildcard_match(
            "1.2.840.10008.1.*",
            "1.2.840.10008.1.2.4.50"
        ));
        assert!(!wildcard_match(
            "1.2.840.10008.1.2.?",
            "1.2.840.10008.1.2.4.50"
        ));
        assert_eq!(
            expand_syntaxes(&["1.2.840.10008.1.2.1*".into()]),
            vec!["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"]
        );
    }
}
