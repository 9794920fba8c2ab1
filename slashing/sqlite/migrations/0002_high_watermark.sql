-- Schema version 2: the database-wide high watermark (row id 1), set by
-- `vigil slashing watermark --high-*` while keys migrate between signers; no
-- row = none. Blocks at or above slot and votes with a source or target at
-- or above epoch are refused. Values use the same XOR 2^63 mapping.
CREATE TABLE high_watermark (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    slot  INTEGER NOT NULL,
    epoch INTEGER NOT NULL
);
