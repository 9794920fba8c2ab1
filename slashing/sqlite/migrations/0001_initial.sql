-- Vigil slashing-protection database, schema version 1 (SQLite).
--
-- Every slot and epoch column holds a u64 mapped order-preservingly onto
-- SQLite's signed 64-bit INTEGER: stored = value XOR 0x8000000000000000
-- (value 0 is stored as -9223372036854775808, 2^63 as 0, 2^64-1 as
-- 9223372036854775807). Comparisons (<, >, =, min, max) on stored values
-- therefore give the same answers as on the u64 values. Use
-- `vigil slashing export` to read the data, not raw SQL.

-- The single genesis validators root of this database (row id 1), pinned by
-- the first signature or import.
CREATE TABLE metadata (
    id                      INTEGER PRIMARY KEY CHECK (id = 1),
    genesis_validators_root BLOB NOT NULL CHECK (length(genesis_validators_root) = 32)
);

-- One row per BLS public key ever seen. enabled = 0: every signature for the
-- key is refused (keymanager DELETE).
CREATE TABLE validators (
    id      INTEGER PRIMARY KEY,
    pubkey  BLOB    NOT NULL UNIQUE CHECK (length(pubkey) = 48),
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1))
);

-- Signed (or imported) block proposals; signing_root NULL = unknown root.
CREATE TABLE signed_blocks (
    validator_id INTEGER NOT NULL REFERENCES validators (id),
    slot         INTEGER NOT NULL,
    signing_root BLOB CHECK (signing_root IS NULL OR length(signing_root) = 32),
    PRIMARY KEY (validator_id, slot)
) WITHOUT ROWID;

-- Signed (or imported) attestations, at most one per target epoch.
CREATE TABLE signed_attestations (
    validator_id INTEGER NOT NULL REFERENCES validators (id),
    target_epoch INTEGER NOT NULL,
    source_epoch INTEGER NOT NULL,
    signing_root BLOB CHECK (signing_root IS NULL OR length(signing_root) = 32),
    PRIMARY KEY (validator_id, target_epoch)
) WITHOUT ROWID;

-- For the "request surrounds a recorded vote" query (recorded source > s).
CREATE INDEX signed_attestations_by_source ON signed_attestations (validator_id, source_epoch);

-- Per-key low watermarks; NULL = not set. The attestation pair is set together.
CREATE TABLE low_watermarks (
    validator_id INTEGER PRIMARY KEY REFERENCES validators (id),
    slot         INTEGER,
    source_epoch INTEGER,
    target_epoch INTEGER,
    CHECK ((source_epoch IS NULL) = (target_epoch IS NULL))
);
