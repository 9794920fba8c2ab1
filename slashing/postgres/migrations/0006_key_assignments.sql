-- Schema version 6: key → validator-client assignments (validator-client failover), shared by
-- every Vigil instance on this database. A key without a row is unassigned; the first
-- identified active client that signs for it adopts it. Writes carry the writer's fencing term
-- (checked against fence in the same transaction), so a deposed leader moves no key.
CREATE TABLE key_assignments (
    pubkey      bytea       PRIMARY KEY CHECK (length(pubkey) = 48),
    client      text        NOT NULL CHECK (client <> ''),
    assigned_at timestamptz NOT NULL DEFAULT now()
);
