-- The fan-out folder each ingest thread is filling. Instance stores commit without syncing the
-- WAL (their file is fsynced first); a folder is recorded here, durably, before any file goes
-- into it, so that after a power loss the start-up scan finds the files whose index rows were
-- lost and indexes them again.
CREATE TABLE storage_folders (
  writer TEXT PRIMARY KEY,
  folder TEXT NOT NULL
);
