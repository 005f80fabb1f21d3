-- The find engine (actors/src/find). Orthanc's REST finds are case-insensitive unless asked
-- otherwise, and /tools/lookup always is: identifiers are indexed in uppercase (ASCII, as
-- SQLite's upper() folds), and so are the study tags users search most: AccessionNumber,
-- StudyDate (exact and ranges) and PatientName (exact and prefix).
DROP INDEX IF EXISTS resources_identifier;
CREATE INDEX resources_identifier_upper ON resources (upper(identifier));
CREATE INDEX studies_accession
    ON resources (upper(json_extract(main_tags, '$."0008,0050"'))) WHERE level = 1;
CREATE INDEX studies_date
    ON resources (upper(json_extract(main_tags, '$."0008,0020"'))) WHERE level = 1;
CREATE INDEX studies_patient_name
    ON resources (upper(json_extract(main_tags, '$."0010,0010"'))) WHERE level = 1;
