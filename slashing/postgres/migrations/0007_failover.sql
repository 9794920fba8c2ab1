-- Schema version 7: the state of validator-client failover (fenced clients, consecutive missed
-- epochs) and its audit log, shared by the HA pair so that a new leader resumes it. Writes are
-- fenced by the writer's term like every other write.
CREATE TABLE failover_clients (
    name   text        PRIMARY KEY,
    fenced boolean     NOT NULL DEFAULT false,
    reason text        NOT NULL DEFAULT '',
    since  timestamptz,
    missed integer     NOT NULL DEFAULT 0
);
CREATE TABLE failover_audit (
    id          bigserial   PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    term        bigint      NOT NULL,
    action      text        NOT NULL,
    from_client text        NOT NULL DEFAULT '',
    to_client   text        NOT NULL DEFAULT '',
    keys        integer     NOT NULL DEFAULT 0,
    reason      text        NOT NULL DEFAULT '',
    detail      text        NOT NULL DEFAULT ''
);
