-- A find with Expand over thousands of studies reads, for each study, its patient's public
-- id and its series' public ids. In the table those lie on a page per study (among the rows
-- of every level); these small covering indexes hold them together (see `extras_many`).
CREATE INDEX patients_public ON resources (id, level, public_id) WHERE level = 0;
CREATE INDEX series_by_study ON resources (parent_id, level, id, public_id) WHERE level = 2;
-- The metadata the JSON of a patient, study or series shows: ExpectedNumberOfInstances,
-- ModifiedFrom, AnonymizedFrom, LastUpdate (IndexInSeries, 1, is an instance's).
CREATE INDEX metadata_shown ON metadata (resource_id, type, value, revision)
    WHERE type >= 4 AND type <= 7;
