-- Schema version 5: the state of validator-client failover (fenced clients, consecutive missed
-- epochs) and its audit log, so that it survives restarts.
CREATE TABLE failover_clients (
    name   TEXT    PRIMARY KEY,
    fenced INTEGER NOT NULL DEFAULT 0,
    reason TEXT    NOT NULL DEFAULT '',
    since  INTEGER NOT NULL DEFAULT 0, -- unix seconds
    missed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE failover_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL, -- unix milliseconds
    action      TEXT    NOT NULL,
    from_client TEXT    NOT NULL DEFAULT '',
    to_client   TEXT    NOT NULL DEFAULT '',
    keys        INTEGER NOT NULL DEFAULT 0,
    reason      TEXT    NOT NULL DEFAULT '',
    detail      TEXT    NOT NULL DEFAULT ''
);
