-- Schema version 3: markers of chunked imports in progress (see package
-- slashing, "Chunked imports"). While a key has a row here its validators.enabled
-- is 0 (every signature refused); was_enabled is the flag to restore when the
-- import's last chunk commits (SetEnabled updates it instead of validators.enabled).
-- import_id is the random id of the import that owns the marker.
CREATE TABLE import_progress (
    validator_id INTEGER PRIMARY KEY REFERENCES validators (id),
    was_enabled  INTEGER NOT NULL CHECK (was_enabled IN (0, 1)),
    import_id    INTEGER NOT NULL
);
