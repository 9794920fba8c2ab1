-- Schema version 4: key → validator-client assignments (validator-client failover). A key
-- without a row is unassigned; the first identified active client that signs for it adopts it.
CREATE TABLE key_assignments (
    pubkey      BLOB    PRIMARY KEY CHECK (length(pubkey) = 48),
    client      TEXT    NOT NULL CHECK (client <> ''),
    assigned_at INTEGER NOT NULL -- unix seconds
);
