-- Schema version 5: the active/standby pair (package failover, failover/pgelect) and the
-- keystores imported through the keymanager API, shared so that keys follow the leader.
--
-- ha_lease is the one lease row. The leader holds the session advisory lock of the pair on its
-- election connection (holder_pid is that connection's backend) and renews valid_until on the
-- database's clock; a new leader takes it with term = greatest(lease term, fence term) + 1 in
-- one statement, then raises the fence (vigil_set_term) to that term before it signs.
-- step_down is set by `vigil ha step-down` and cleared by the next take.
CREATE TABLE ha_lease (
    id            smallint    PRIMARY KEY CHECK (id = 1),
    holder        text,
    term          bigint      NOT NULL DEFAULT 0,
    advertise_url text        NOT NULL DEFAULT '',
    holder_pid    integer,
    acquired_at   timestamptz,
    renewed_at    timestamptz,
    valid_until   timestamptz,
    step_down     boolean     NOT NULL DEFAULT false
);
INSERT INTO ha_lease (id) VALUES (1);

-- managed_keystores holds each keystore imported through the keymanager API: the EIP-2335 JSON
-- as imported and its password sealed under the pair's key-encryption key (AES-256-GCM; kek_id
-- is a fingerprint of that key, never the key). A delete keeps the row as a tombstone
-- (keystore and password NULL) so an instance that missed it removes its copy. version comes
-- from one sequence: the largest version is the state a standby compares with its own.
CREATE SEQUENCE managed_keystores_version;
CREATE TABLE managed_keystores (
    pubkey          bytea       PRIMARY KEY CHECK (length(pubkey) = 48),
    keystore        text,
    password_sealed bytea,
    kek_id          text        NOT NULL,
    version         bigint      NOT NULL DEFAULT nextval('managed_keystores_version'),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL,
    CHECK ((keystore IS NULL) = (password_sealed IS NULL))
);
