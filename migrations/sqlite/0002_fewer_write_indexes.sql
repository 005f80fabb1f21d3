-- Every index is written by every ingest. These two served rare queries (recycling order,
-- /changes filtered by type) that a scan answers well enough; dropping them cuts the pages
-- that each group commit writes to the WAL.
DROP INDEX IF EXISTS resources_recycle;
DROP INDEX IF EXISTS changes_type;
