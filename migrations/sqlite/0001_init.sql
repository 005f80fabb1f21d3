-- pacsnode index, SQLite. One row per resource of any level; the main DICOM tags of a level
-- are kept as a JSON object {"gggg,eeee": "value"} in the row (what browsing answers), and
-- the instance's dataset before Pixel Data is kept in instance_headers (what /tags answers),
-- so no request re-reads a DICOM file to answer with tags.

CREATE TABLE resources (
    id          INTEGER PRIMARY KEY,
    public_id   TEXT    NOT NULL UNIQUE,
    level       INTEGER NOT NULL,            -- 0 patient, 1 study, 2 series, 3 instance
    parent_id   INTEGER REFERENCES resources(id) ON DELETE CASCADE,
    identifier  TEXT    NOT NULL,            -- PatientID / StudyInstanceUID / SeriesInstanceUID / SOPInstanceUID
    main_tags   TEXT    NOT NULL,
    is_stable   INTEGER NOT NULL DEFAULT 0,
    protected   INTEGER NOT NULL DEFAULT 0,
    recycle_seq INTEGER NOT NULL DEFAULT 0   -- patients: last time it received an instance
);
CREATE INDEX resources_parent ON resources(parent_id);
CREATE INDEX resources_level ON resources(level, id);
CREATE INDEX resources_identifier ON resources(identifier);
CREATE INDEX resources_recycle ON resources(level, protected, recycle_seq);

CREATE TABLE metadata (
    resource_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    type        INTEGER NOT NULL,
    value       TEXT    NOT NULL,
    revision    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_id, type)
) WITHOUT ROWID;

CREATE TABLE attachments (
    resource_id       INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    file_type         INTEGER NOT NULL,
    uuid              TEXT    NOT NULL,
    compressed_size   INTEGER NOT NULL,
    uncompressed_size INTEGER NOT NULL,
    compression       INTEGER NOT NULL,
    uncompressed_md5  TEXT    NOT NULL,
    compressed_md5    TEXT    NOT NULL,
    revision          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (resource_id, file_type)
) WITHOUT ROWID;

CREATE TABLE instance_headers (
    resource_id     INTEGER PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    transfer_syntax TEXT NOT NULL,
    header          BLOB NOT NULL
);

CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    change_type INTEGER NOT NULL,
    -- as in Orthanc, the changes of a resource go away with it
    resource_id INTEGER REFERENCES resources(id) ON DELETE CASCADE,
    level       INTEGER NOT NULL,
    public_id   TEXT    NOT NULL,
    date        TEXT    NOT NULL
);
CREATE INDEX changes_type ON changes(change_type, seq);
CREATE INDEX changes_resource ON changes(resource_id);

CREATE TABLE exports (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    level      INTEGER NOT NULL,
    public_id  TEXT    NOT NULL,
    modality   TEXT    NOT NULL,
    date       TEXT    NOT NULL,
    patient_id TEXT    NOT NULL,
    study_uid  TEXT    NOT NULL,
    series_uid TEXT    NOT NULL,
    sop_uid    TEXT    NOT NULL
);

-- "Stable" timers: a resource becomes stable when its deadline (ms since epoch) passes
-- without a new instance. Rows, not in-memory timers, so they survive a restart.
CREATE TABLE stable_pending (
    resource_id INTEGER PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    deadline    INTEGER NOT NULL
);
CREATE INDEX stable_deadline ON stable_pending(deadline);

CREATE TABLE labels (
    resource_id INTEGER NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    label       TEXT    NOT NULL,
    PRIMARY KEY (resource_id, label)
) WITHOUT ROWID;

CREATE TABLE global_properties (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Modalities and peers edited through REST (DicomModalitiesInDatabase / OrthancPeersInDatabase).
CREATE TABLE modalities (name TEXT PRIMARY KEY, config TEXT NOT NULL);
CREATE TABLE peers (name TEXT PRIMARY KEY, config TEXT NOT NULL);
