-- The dataset kept per instance is zlib-compressed (encoding 1) by new ingests: it duplicates
-- the file's tags, and was the largest part of the index per instance.
ALTER TABLE instance_headers ADD COLUMN encoding INTEGER NOT NULL DEFAULT 0;
