-- The job queue (`/jobs`): kept here so that jobs survive a restart (SaveJobs) and so that
-- several nodes can share them later. `request` says what the job does (JSON), enough to run
-- it again; `content` is what `/jobs/{id}` shows of its progress and results.
CREATE TABLE jobs (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  id              TEXT    NOT NULL UNIQUE,
  type            TEXT    NOT NULL,
  state           TEXT    NOT NULL,
  priority        INTEGER NOT NULL DEFAULT 0,
  progress        INTEGER NOT NULL DEFAULT 0,
  creation_time   TEXT    NOT NULL,
  completion_time TEXT,
  timestamp       TEXT    NOT NULL,
  runtime_ms      INTEGER NOT NULL DEFAULT 0,
  error_code      INTEGER NOT NULL DEFAULT 0,
  error_details   TEXT    NOT NULL DEFAULT '',
  request         TEXT    NOT NULL,
  content         TEXT    NOT NULL DEFAULT '{}',
  user_data       TEXT
);
