-- Vigil slashing-protection database, schema version 1 (PostgreSQL).
--
-- Every slot and epoch column holds a u64 mapped order-preservingly onto
-- BIGINT: stored = value XOR 0x8000000000000000 (value 0 is stored as
-- -9223372036854775808, 2^63 as 0, 2^64-1 as 9223372036854775807), the same
-- mapping as the SQLite store. Comparisons (<, >, =, least, greatest) on
-- stored values give the same answers as on the u64 values. Use
-- `vigil slashing export` to read the data, not raw SQL.
--
-- The tables are written only through the functions at the end of this file
-- (one call = one statement = one transaction = one network round trip), and
-- read by the store's export. Relations are unqualified: they live in the
-- schema first on the connection's search_path (Options.Schema).

-- The single genesis validators root of this database (row id 1), pinned by
-- the first recorded signature or import.
CREATE TABLE metadata (
    id                      smallint PRIMARY KEY CHECK (id = 1),
    genesis_validators_root bytea    NOT NULL CHECK (length(genesis_validators_root) = 32)
);

-- The fencing term (row id 1). Every write carries the writer's term and
-- commits only while it equals this one; vigil_set_term changes it.
CREATE TABLE fence (
    id   smallint PRIMARY KEY CHECK (id = 1),
    term bigint   NOT NULL CHECK (term > 0)
);
INSERT INTO fence (id, term) VALUES (1, 1);

-- One row per BLS public key ever seen, never deleted (a trigger below
-- refuses DELETE and TRUNCATE: a key's history must not be lost while its
-- signatures exist). enabled = false: every signature for the key is refused
-- (keymanager DELETE). The low watermarks live here (NULL = not set; the
-- attestation pair is set together), so one index probe gives every per-key
-- fact the rules need besides the history itself.
CREATE TABLE validators (
    id           bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pubkey       bytea   NOT NULL UNIQUE CHECK (length(pubkey) = 48),
    enabled      boolean NOT NULL DEFAULT true,
    lw_slot      bigint,
    lw_source    bigint,
    lw_target    bigint,
    CHECK ((lw_source IS NULL) = (lw_target IS NULL))
);

-- Signed (or imported) block proposals, one per (key, slot): the primary key
-- is the last line of defence against a double proposal. signing_root NULL =
-- unknown root (imported without one). No foreign key: validators rows are
-- never deleted, and the referential check would lock the validator row on
-- every insert.
CREATE TABLE signed_blocks (
    validator_id bigint NOT NULL,
    slot         bigint NOT NULL,
    signing_root bytea  CHECK (signing_root IS NULL OR length(signing_root) = 32),
    PRIMARY KEY (validator_id, slot)
);

-- Signed (or imported) attestations, one per (key, target epoch): the
-- primary key is the last line of defence against a double vote.
CREATE TABLE signed_attestations (
    validator_id bigint NOT NULL,
    target_epoch bigint NOT NULL,
    source_epoch bigint NOT NULL,
    signing_root bytea  CHECK (signing_root IS NULL OR length(signing_root) = 32),
    PRIMARY KEY (validator_id, target_epoch)
);

-- For the "request surrounds a recorded vote" probe (recorded source > s).
CREATE INDEX signed_attestations_by_source ON signed_attestations (validator_id, source_epoch);

CREATE FUNCTION vigil_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'vigil: slashing-protection history is never deleted (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER validators_no_delete BEFORE DELETE ON validators
    FOR EACH ROW EXECUTE FUNCTION vigil_refuse_delete();
CREATE TRIGGER validators_no_truncate BEFORE TRUNCATE ON validators
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_refuse_delete();

-- ---------------------------------------------------------------------------
-- Write functions. Verdict codes (Go: verdict* constants in store.go):
--   0 record      the request is new and was recorded
--   1 repeat      identical to a recorded message; nothing new recorded
--   2 fenced      x1 = the database's term; nothing written
--   3 gvr         genesis validators root mismatch, xroot = the pinned root
--   4 disabled    the key is disabled
--   5 source_after_target
--   6 below_low_watermark  blocks: x1 = LW slot; votes: x1 = LW source, x2 = LW target
--   7 double      blocks: xroot = recorded root; votes: x1 = recorded source, xroot = recorded root
--   8 surrounded  the request is surrounded by recorded vote x1→x2
--   9 surrounding the request surrounds recorded vote x1→x2
-- The order of the checks is that of slashing.CheckBlock/CheckAttestation
-- (genesis root first, as slashing.CheckGenesisValidatorsRoot runs before
-- them). Refusals return (they do not raise), so the transaction commits
-- what was done before the refusal: only the registration of a new key,
-- as the SQLite store does.
--
-- Per-key serialisation: the facts are read after taking a transaction-scoped
-- advisory lock on (namespace, validator id): namespace 1447493633 for
-- blocks, 1447493634 for attestations (blocks and votes of one key do not
-- interact). Imports and enable/disable take both, blocks first. The
-- two-integer advisory lock space is separate from the one-bigint space.

-- The fence: SELECT ... FOR SHARE locks the fence row and takes a ROW SHARE
-- lock on the fence table, both held to commit, and returns the newest
-- committed term. ROW SHARE conflicts with the EXCLUSIVE lock of
-- vigil_set_term, which therefore waits for every write in flight and,
-- being queued, makes later writes wait for it (see the Go package doc for
-- the argument). The row lock makes every write a write transaction (its
-- commit waits for the WAL flush and synchronous standbys even when it only
-- repeats or refuses), and makes a term changed by hand with a plain UPDATE
-- wait for the writes in flight too. Returns the current term.
CREATE FUNCTION vigil_fence_term() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_term bigint;
BEGIN
    -- The key lock serialises check-and-records only if every statement
    -- after it takes a fresh snapshot: READ COMMITTED. (Under REPEATABLE
    -- READ two concurrent surrounding votes could both commit.)
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'vigil: slashing-protection writes need READ COMMITTED, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'invalid_transaction_state';
    END IF;
    -- A nil return must mean a durable record: never commit asynchronously.
    IF current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    SELECT term INTO v_term FROM fence WHERE id = 1 FOR SHARE;
    RETURN v_term;
END
$$;

-- The key's id, registering an unknown key (enabled, no watermarks).
CREATE FUNCTION vigil_validator_id(p_pubkey bytea) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM validators WHERE pubkey = p_pubkey;
    IF FOUND THEN
        RETURN v_id;
    END IF;
    INSERT INTO validators (pubkey) VALUES (p_pubkey) ON CONFLICT (pubkey) DO NOTHING RETURNING id INTO v_id;
    IF NOT FOUND THEN
        -- A concurrent registration committed first (ON CONFLICT waited for it).
        SELECT id INTO STRICT v_id FROM validators WHERE pubkey = p_pubkey;
    END IF;
    RETURN v_id;
END
$$;

CREATE FUNCTION vigil_lock_key(p_namespace integer, p_id bigint) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(p_namespace, (p_id % 2147483648)::integer)
$$;

-- Pins p_gvr if the database has none; returns the root now pinned (which
-- differs from p_gvr if a concurrent transaction pinned another first).
CREATE FUNCTION vigil_pin_gvr(p_gvr bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
    v_gvr bytea;
BEGIN
    INSERT INTO metadata (id, genesis_validators_root) VALUES (1, p_gvr) ON CONFLICT (id) DO NOTHING;
    IF FOUND THEN
        RETURN p_gvr;
    END IF;
    SELECT genesis_validators_root INTO STRICT v_gvr FROM metadata WHERE id = 1;
    RETURN v_gvr;
END
$$;

CREATE FUNCTION vigil_sign_block(
    p_term bigint, p_pubkey bytea, p_slot bigint, p_root bytea, p_gvr bytea,
    OUT verdict smallint, OUT x1 bigint, OUT x2 bigint, OUT xroot bytea
) LANGUAGE plpgsql AS $$
DECLARE
    v_term    bigint;
    v_gvr     bytea;
    v_id      bigint;
    v_enabled boolean;
    v_lw      bigint;
    v_root    bytea;
BEGIN
    v_term := vigil_fence_term();
    IF v_term IS DISTINCT FROM p_term THEN
        verdict := 2; x1 := v_term; RETURN;
    END IF;
    SELECT genesis_validators_root INTO v_gvr FROM metadata WHERE id = 1;
    IF FOUND AND v_gvr <> p_gvr THEN
        verdict := 3; xroot := v_gvr; RETURN;
    END IF;
    v_id := vigil_validator_id(p_pubkey);
    PERFORM vigil_lock_key(1447493633, v_id);
    SELECT enabled, lw_slot INTO STRICT v_enabled, v_lw FROM validators WHERE id = v_id;
    IF NOT v_enabled THEN
        verdict := 4; RETURN;
    END IF;
    IF v_lw IS NOT NULL AND p_slot < v_lw THEN
        verdict := 6; x1 := v_lw; RETURN;
    END IF;
    SELECT signing_root INTO v_root FROM signed_blocks WHERE validator_id = v_id AND slot = p_slot;
    IF FOUND THEN
        IF v_root IS NOT NULL AND v_root = p_root THEN
            verdict := 1; RETURN;
        END IF;
        verdict := 7; xroot := v_root; RETURN;
    END IF;
    IF v_gvr IS NULL THEN
        v_gvr := vigil_pin_gvr(p_gvr);
        IF v_gvr <> p_gvr THEN
            verdict := 3; xroot := v_gvr; RETURN;
        END IF;
    END IF;
    INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (v_id, p_slot, p_root);
    IF v_lw IS NULL THEN
        UPDATE validators SET lw_slot = p_slot WHERE id = v_id AND lw_slot IS NULL;
    END IF;
    verdict := 0;
END
$$;

CREATE FUNCTION vigil_sign_attestation(
    p_term bigint, p_pubkey bytea, p_source bigint, p_target bigint, p_root bytea, p_gvr bytea,
    OUT verdict smallint, OUT x1 bigint, OUT x2 bigint, OUT xroot bytea
) LANGUAGE plpgsql AS $$
DECLARE
    v_term    bigint;
    v_gvr     bytea;
    v_id      bigint;
    v_enabled boolean;
    v_lw_src  bigint;
    v_lw_tgt  bigint;
    v_src     bigint;
    v_tgt     bigint;
    v_root    bytea;
BEGIN
    v_term := vigil_fence_term();
    IF v_term IS DISTINCT FROM p_term THEN
        verdict := 2; x1 := v_term; RETURN;
    END IF;
    SELECT genesis_validators_root INTO v_gvr FROM metadata WHERE id = 1;
    IF FOUND AND v_gvr <> p_gvr THEN
        verdict := 3; xroot := v_gvr; RETURN;
    END IF;
    v_id := vigil_validator_id(p_pubkey);
    PERFORM vigil_lock_key(1447493634, v_id);
    SELECT enabled, lw_source, lw_target INTO STRICT v_enabled, v_lw_src, v_lw_tgt FROM validators WHERE id = v_id;
    IF NOT v_enabled THEN
        verdict := 4; RETURN;
    END IF;
    IF p_source > p_target THEN
        verdict := 5; RETURN;
    END IF;
    IF v_lw_src IS NOT NULL AND (p_source < v_lw_src OR p_target < v_lw_tgt) THEN
        verdict := 6; x1 := v_lw_src; x2 := v_lw_tgt; RETURN;
    END IF;
    SELECT source_epoch, signing_root INTO v_src, v_root
        FROM signed_attestations WHERE validator_id = v_id AND target_epoch = p_target;
    IF FOUND THEN
        IF v_root IS NOT NULL AND v_root = p_root AND v_src = p_source THEN
            verdict := 1; RETURN;
        END IF;
        verdict := 7; x1 := v_src; xroot := v_root; RETURN;
    END IF;
    -- A recorded vote that surrounds the request (source < s, target > t):
    -- scan by target (primary key), which stays short in forward operation.
    -- The ORDER BY (the index order) and "+ 0" pin that plan: PL/pgSQL
    -- statements run with generic plans, for which LIMIT 1 otherwise makes a
    -- sequential scan look cheap (it is not when nothing matches).
    SELECT source_epoch, target_epoch INTO v_src, v_tgt FROM signed_attestations
        WHERE validator_id = v_id AND target_epoch > p_target AND source_epoch + 0 < p_source
        ORDER BY validator_id, target_epoch LIMIT 1;
    IF FOUND THEN
        verdict := 8; x1 := v_src; x2 := v_tgt; RETURN;
    END IF;
    -- A recorded vote the request surrounds (source > s, target < t): scan
    -- by source (signed_attestations_by_source), short in forward operation.
    SELECT source_epoch, target_epoch INTO v_src, v_tgt FROM signed_attestations
        WHERE validator_id = v_id AND source_epoch > p_source AND target_epoch + 0 < p_target
        ORDER BY validator_id, source_epoch LIMIT 1;
    IF FOUND THEN
        verdict := 9; x1 := v_src; x2 := v_tgt; RETURN;
    END IF;
    IF v_gvr IS NULL THEN
        v_gvr := vigil_pin_gvr(p_gvr);
        IF v_gvr <> p_gvr THEN
            verdict := 3; xroot := v_gvr; RETURN;
        END IF;
    END IF;
    INSERT INTO signed_attestations (validator_id, target_epoch, source_epoch, signing_root)
        VALUES (v_id, p_target, p_source, p_root);
    IF v_lw_src IS NULL THEN
        UPDATE validators SET lw_source = p_source, lw_target = p_target WHERE id = v_id AND lw_source IS NULL;
    END IF;
    verdict := 0;
END
$$;

-- Enables or disables a key (registering it if new). Verdict 0 or 2 (fenced).
CREATE FUNCTION vigil_set_enabled(
    p_term bigint, p_pubkey bytea, p_enabled boolean,
    OUT verdict smallint, OUT x1 bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_term bigint;
    v_id   bigint;
BEGIN
    v_term := vigil_fence_term();
    IF v_term IS DISTINCT FROM p_term THEN
        verdict := 2; x1 := v_term; RETURN;
    END IF;
    v_id := vigil_validator_id(p_pubkey);
    PERFORM vigil_lock_key(1447493633, v_id);
    PERFORM vigil_lock_key(1447493634, v_id);
    UPDATE validators SET enabled = p_enabled WHERE id = v_id AND enabled IS DISTINCT FROM p_enabled;
    verdict := 0;
END
$$;

-- Merges one validator's interchange history (slashing.MergeBlock and
-- slashing.MergeAttestation, written in SQL; messages in array order), and
-- sets the low watermarks given (slashing.ImportWatermarks, NULL = none)
-- where the key has none. Verdict 0, 2 (fenced) or 3 (genesis root
-- mismatch; nothing imported).
CREATE FUNCTION vigil_import_validator(
    p_term bigint, p_gvr bytea, p_pubkey bytea,
    p_slots bigint[], p_block_roots bytea[],
    p_sources bigint[], p_targets bigint[], p_att_roots bytea[],
    p_lw_slot bigint, p_lw_source bigint, p_lw_target bigint,
    OUT verdict smallint, OUT x1 bigint, OUT xroot bytea
) LANGUAGE plpgsql AS $$
DECLARE
    v_term bigint;
    v_gvr  bytea;
    v_id   bigint;
BEGIN
    v_term := vigil_fence_term();
    IF v_term IS DISTINCT FROM p_term THEN
        verdict := 2; x1 := v_term; RETURN;
    END IF;
    v_gvr := vigil_pin_gvr(p_gvr);
    IF v_gvr <> p_gvr THEN
        verdict := 3; xroot := v_gvr; RETURN;
    END IF;
    v_id := vigil_validator_id(p_pubkey);
    PERFORM vigil_lock_key(1447493633, v_id);
    PERFORM vigil_lock_key(1447493634, v_id);
    FOR i IN 1 .. coalesce(array_length(p_slots, 1), 0) LOOP
        INSERT INTO signed_blocks AS b (validator_id, slot, signing_root)
            VALUES (v_id, p_slots[i], p_block_roots[i])
            ON CONFLICT (validator_id, slot) DO UPDATE SET
                signing_root = CASE WHEN b.signing_root = excluded.signing_root THEN b.signing_root ELSE NULL END;
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(p_targets, 1), 0) LOOP
        INSERT INTO signed_attestations AS a (validator_id, target_epoch, source_epoch, signing_root)
            VALUES (v_id, p_targets[i], p_sources[i], p_att_roots[i])
            ON CONFLICT (validator_id, target_epoch) DO UPDATE SET
                source_epoch = greatest(a.source_epoch, excluded.source_epoch),
                signing_root = CASE WHEN a.source_epoch = excluded.source_epoch AND a.signing_root = excluded.signing_root
                    THEN a.signing_root ELSE NULL END;
    END LOOP;
    UPDATE validators SET
        lw_slot   = coalesce(lw_slot, p_lw_slot),
        lw_source = CASE WHEN lw_source IS NULL THEN p_lw_source ELSE lw_source END,
        lw_target = CASE WHEN lw_source IS NULL THEN p_lw_target ELSE lw_target END
    WHERE id = v_id
      AND ((lw_slot IS NULL AND p_lw_slot IS NOT NULL) OR (lw_source IS NULL AND p_lw_source IS NOT NULL));
    verdict := 0;
END
$$;

-- Changes the fencing term (never lowers it). The EXCLUSIVE lock on the
-- fence table waits for every write in flight (each holds ROW SHARE on the
-- fence table from vigil_fence_term until its commit) and queues every
-- later write behind this transaction. Returns the term now current (the
-- larger of the old one and p_term).
CREATE FUNCTION vigil_set_term(p_term bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_term bigint;
BEGIN
    IF current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    LOCK TABLE fence IN EXCLUSIVE MODE;
    UPDATE fence SET term = greatest(term, p_term) WHERE id = 1 RETURNING term INTO STRICT v_term;
    RETURN v_term;
END
$$;
