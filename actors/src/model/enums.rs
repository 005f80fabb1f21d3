//! Resource levels, metadata types and change types, with Orthanc's numbers and names.

use serde::{Deserialize, Serialize};

/// A level of the DICOM model of the real world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    Patient = 0,
    Study = 1,
    Series = 2,
    Instance = 3,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Patient, Level::Study, Level::Series, Level::Instance];

    pub fn from_i64(v: i64) -> Option<Level> {
        Self::ALL.get(usize::try_from(v).ok()?).copied()
    }
    /// "Patient", "Study", ... as in Orthanc's JSON `Type` / `ResourceType`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Patient => "Patient",
            Level::Study => "Study",
            Level::Series => "Series",
            Level::Instance => "Instance",
        }
    }
    /// "patients", "studies", ... as in the REST paths.
    pub fn plural(self) -> &'static str {
        match self {
            Level::Patient => "patients",
            Level::Study => "studies",
            Level::Series => "series",
            Level::Instance => "instances",
        }
    }
    pub fn from_plural(s: &str) -> Option<Level> {
        Self::ALL.into_iter().find(|l| l.plural() == s)
    }
    /// Parses a level name as Orthanc does (case-insensitive, singular or plural).
    pub fn parse(s: &str) -> Option<Level> {
        let l = s.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|lv| lv.name().eq_ignore_ascii_case(&l) || lv.plural() == l)
    }
    pub fn parent(self) -> Option<Level> {
        Level::from_i64(self as i64 - 1)
    }
    pub fn child(self) -> Option<Level> {
        Level::from_i64(self as i64 + 1)
    }
}

macro_rules! numbered_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $num:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant = $num),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn number(self) -> i64 { self as i64 }
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
            pub fn from_number(n: i64) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.number() == n)
            }
            pub fn from_name(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
        }
    };
}

numbered_enum! {
    /// Orthanc's reserved metadata (ServerEnumerations.h); user metadata are 1024-65535.
    MetadataType {
        IndexInSeries = 1,
        ReceptionDate = 2,
        RemoteAet = 3,
        ExpectedNumberOfInstances = 4,
        ModifiedFrom = 5,
        AnonymizedFrom = 6,
        LastUpdate = 7,
        Origin = 8,
        TransferSyntax = 9,
        SopClassUid = 10,
        RemoteIp = 11,
        CalledAet = 12,
        HttpUsername = 13,
        PixelDataOffset = 14,
        MainDicomTagsSignature = 15,
        MainDicomSequences = 16,
        PixelDataVR = 17,
    }
}

impl MetadataType {
    /// The name Orthanc shows (two differ from the Rust identifier).
    pub fn orthanc_name(self) -> &'static str {
        match self {
            MetadataType::RemoteAet => "RemoteAET",
            MetadataType::RemoteIp => "RemoteIP",
            MetadataType::CalledAet => "CalledAET",
            other => other.name(),
        }
    }
    pub fn from_orthanc_name(s: &str) -> Option<MetadataType> {
        Self::ALL.iter().copied().find(|m| m.orthanc_name() == s)
    }
}

numbered_enum! {
    /// Orthanc's change types (values up to 4095 are logged in /changes).
    ChangeType {
        CompletedSeries = 1,
        NewInstance = 2,
        NewPatient = 3,
        NewSeries = 4,
        NewStudy = 5,
        AnonymizedStudy = 6,
        AnonymizedSeries = 7,
        ModifiedStudy = 8,
        ModifiedSeries = 9,
        AnonymizedPatient = 10,
        ModifiedPatient = 11,
        StablePatient = 12,
        StableStudy = 13,
        StableSeries = 14,
        UpdatedAttachment = 15,
        UpdatedMetadata = 16,
        StatusChanged = 17,
        JobSubmitted = 18,
        JobSuccess = 19,
        JobFailure = 20,
    }
}

impl ChangeType {
    /// The stable change for a level (instances never become stable).
    pub fn stable(level: Level) -> Option<ChangeType> {
        match level {
            Level::Patient => Some(ChangeType::StablePatient),
            Level::Study => Some(ChangeType::StableStudy),
            Level::Series => Some(ChangeType::StableSeries),
            Level::Instance => None,
        }
    }
    pub fn new_resource(level: Level) -> ChangeType {
        match level {
            Level::Patient => ChangeType::NewPatient,
            Level::Study => ChangeType::NewStudy,
            Level::Series => ChangeType::NewSeries,
            Level::Instance => ChangeType::NewInstance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(Level::parse("Studies"), Some(Level::Study));
        assert_eq!(Level::parse("instance"), Some(Level::Instance));
        assert_eq!(
            MetadataType::from_orthanc_name("RemoteAET"),
            Some(MetadataType::RemoteAet)
        );
        assert_eq!(ChangeType::from_number(13), Some(ChangeType::StableStudy));
        assert_eq!(ChangeType::NewInstance.name(), "NewInstance");
    }
}
