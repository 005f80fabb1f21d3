-- MainDicomTagsSignature is the same for every resource of a level: the index computes it
-- from the level (read.rs) instead of keeping a copy per resource (an eighth of the index).
DELETE FROM metadata WHERE type = 15;

-- Finds at the study level on tags without an index of their own (`*chest*`) scan the
-- studies: this covering index holds their rows together, instead of spread among the
-- series and instances of the table.
CREATE INDEX studies_scan
    ON resources (level, id, public_id, parent_id, is_stable, protected, main_tags) WHERE level = 1;
