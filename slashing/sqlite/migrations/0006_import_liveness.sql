-- Schema version 6: when an import last wrote its marker (unix milliseconds), so that a new
-- import of a key tells an import still running (it is refused) from one that was interrupted
-- (it takes the marker over): see package slashing, "Chunked imports". Markers from before this
-- version get 0, so they count as interrupted (no import runs across an upgrade).
ALTER TABLE import_progress ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
