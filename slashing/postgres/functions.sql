-- Vigil slashing-protection database (PostgreSQL): the current definition of
-- every function of the schema, the one place to read them.
--
-- The migrations (migrations/NNNN_name.sql) hold the schema: tables, indexes,
-- constraints, triggers, and the functions as each version first shipped
-- them (kept as they are, so that an old database upgrades step by step
-- exactly as before). This file is applied after the last migration, in the
-- same transaction and under the same migration lock (migrate.go), whenever
-- a migration ran; a database already at the current version is left alone.
-- A test (functions_test.go) proves that a fresh database and one upgraded
-- from every older version end with the same functions, tables and indexes,
-- and that those functions are the ones the migrations alone produce.
--
-- Changing a function: edit it here AND add a migration (possibly empty but
-- for a comment), so that the schema version says which functions a
-- database runs (an instance refuses a newer schema, so two versions of
-- Vigil never replace each other's functions back and forth). Everything
-- here must be idempotent (CREATE OR REPLACE); a function whose signature
-- changes needs DROP FUNCTION IF EXISTS of the old signature first, and one
-- that is removed needs its DROP here.
--
-- Values: every slot and epoch is a u64 stored as BIGINT XOR 2^63 (see
-- 0001_initial.sql). Relations are unqualified: they live in the schema
-- first on the connection's search_path (Options.Schema).
--
-- Verdict codes (Go: verdict* constants in store.go):
--   0 record      the request is new and was recorded (imports: merged)
--   1 repeat      identical to a recorded message; nothing new recorded
--   2 fenced      x1 = the database's term; nothing written
--   3 gvr         genesis validators root mismatch, xroot = the pinned root
--   4 disabled    the key is disabled
--   5 source_after_target
--   6 below_low_watermark  blocks: x1 = LW slot; votes: x1 = LW source, x2 = LW target
--   7 double      blocks: xroot = recorded root; votes: x1 = recorded source, xroot = recorded root
--   8 surrounded  the request is surrounded by recorded vote x1→x2
--   9 surrounding the request surrounds recorded vote x1→x2
--  10 above_high_watermark  blocks: x1 = HW slot; votes: x1 = HW epoch
--  11 import conflict  a later chunk whose import no longer owns the key's marker
--  12 import running  a first chunk while another import of the key is running; x1 = ms since its last chunk
-- The order of the checks is that of slashing.CheckBlock/CheckAttestation
-- (genesis root first, as slashing.CheckGenesisValidatorsRoot runs before
-- them). Refusals return (they do not raise), so the transaction commits
-- what was done before the refusal: only the registration of a new key,
-- as the SQLite store does.
--
-- Per-key serialisation: the facts are read after taking a transaction-scoped
-- advisory lock on (namespace, validator id): namespace 1447493633 for
-- blocks, 1447493634 for attestations (blocks and votes of one key do not
-- interact). Imports, enable/disable and maintenance take both, blocks
-- first; several keys in ascending (id % 2^31, id) order. The two-integer
-- advisory lock space is separate from the one-bigint space.

-- ---------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------

-- The trigger function of validators_no_delete and validators_no_truncate
-- (0001_initial.sql): a key's history is never deleted.
CREATE OR REPLACE FUNCTION vigil_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'vigil: slashing-protection history is never deleted (% on %)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;

-- ---------------------------------------------------------------------------
-- Building blocks of every write
-- ---------------------------------------------------------------------------

-- The fence: SELECT ... FOR SHARE locks the fence row and takes a ROW SHARE
-- lock on the fence table, both held to commit, and returns the newest
-- committed term. ROW SHARE conflicts with the EXCLUSIVE lock of
-- vigil_set_term, which therefore waits for every write in flight and,
-- being queued, makes later writes wait for it (see the Go package doc for
-- the argument). The row lock makes every write a write transaction (its
-- commit waits for the WAL flush and synchronous standbys even when it only
-- repeats or refuses), and makes a term changed by hand with a plain UPDATE
-- wait for the writes in flight too.
-- Returns the current term and the high watermark of the same (locked) row:
-- the signature functions get it from the statement they already run.
CREATE OR REPLACE FUNCTION vigil_fence(OUT term bigint, OUT hw_slot bigint, OUT hw_epoch bigint) LANGUAGE plpgsql AS $$
BEGIN
    -- See vigil_fence_term (0001_initial.sql): READ COMMITTED is required,
    -- and a nil return must mean a durable record.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'vigil: slashing-protection writes need READ COMMITTED, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'invalid_transaction_state';
    END IF;
    IF current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    SELECT f.term, f.hw_slot, f.hw_epoch INTO term, hw_slot, hw_epoch FROM fence f WHERE f.id = 1 FOR SHARE;
END
$$;

-- The fence check of every write but the signatures (vigil_fence without the
-- high watermark). Returns the current term.
CREATE OR REPLACE FUNCTION vigil_fence_term() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_term bigint;
BEGIN
    SELECT f.term INTO v_term FROM vigil_fence() f;
    RETURN v_term;
END
$$;

-- The key's id, registering an unknown key (enabled, no watermarks).
CREATE OR REPLACE FUNCTION vigil_validator_id(p_pubkey bytea) RETURNS bigint LANGUAGE plpgsql AS $$
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

-- The transaction-scoped advisory lock of a key: p_namespace 1447493633 for
-- blocks, 1447493634 for attestations.
CREATE OR REPLACE FUNCTION vigil_lock_key(p_namespace integer, p_id bigint) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(p_namespace, (p_id % 2147483648)::integer)
$$;

-- Both advisory locks of a key, blocks first (as imports and enable/disable
-- take them). Callers that lock several keys in one transaction lock them in
-- ascending (id % 2^31, id) order, so that every multi-key transaction takes
-- locks in one global order (key, then blocks before attestations), which
-- single-key transactions respect too: no deadlock between them.
CREATE OR REPLACE FUNCTION vigil_lock_key_both(p_id bigint) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(1447493633, (p_id % 2147483648)::integer),
           pg_advisory_xact_lock(1447493634, (p_id % 2147483648)::integer)
$$;

-- Pins p_gvr if the database has none; returns the root now pinned (which
-- differs from p_gvr if a concurrent transaction pinned another first).
CREATE OR REPLACE FUNCTION vigil_pin_gvr(p_gvr bytea) RETURNS bytea LANGUAGE plpgsql AS $$
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

-- ---------------------------------------------------------------------------
-- Signatures (one call per signature)
-- ---------------------------------------------------------------------------

-- A block signature: the fence (with the high watermark), the genesis root,
-- the key's id and block lock, then the checks of slashing.CheckBlock in its
-- order (enabled, high watermark, low watermark, same slot); records on
-- verdict 0.
CREATE OR REPLACE FUNCTION vigil_sign_block(
    p_term bigint, p_pubkey bytea, p_slot bigint, p_root bytea, p_gvr bytea,
    OUT verdict smallint, OUT x1 bigint, OUT x2 bigint, OUT xroot bytea
) LANGUAGE plpgsql AS $$
DECLARE
    v_term    bigint;
    v_hw      bigint;
    v_gvr     bytea;
    v_id      bigint;
    v_enabled boolean;
    v_lw      bigint;
    v_root    bytea;
BEGIN
    SELECT f.term, f.hw_slot INTO v_term, v_hw FROM vigil_fence() f;
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
    IF v_hw IS NOT NULL AND p_slot >= v_hw THEN
        verdict := 10; x1 := v_hw; RETURN;
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

-- An attestation signature: as vigil_sign_block, with the attestation lock
-- and the checks of slashing.CheckAttestation in its order (enabled, source
-- after target, high watermark, low watermark, same target, surrounding,
-- surrounded).
CREATE OR REPLACE FUNCTION vigil_sign_attestation(
    p_term bigint, p_pubkey bytea, p_source bigint, p_target bigint, p_root bytea, p_gvr bytea,
    OUT verdict smallint, OUT x1 bigint, OUT x2 bigint, OUT xroot bytea
) LANGUAGE plpgsql AS $$
DECLARE
    v_term    bigint;
    v_hw      bigint;
    v_gvr     bytea;
    v_id      bigint;
    v_enabled boolean;
    v_lw_src  bigint;
    v_lw_tgt  bigint;
    v_src     bigint;
    v_tgt     bigint;
    v_root    bytea;
BEGIN
    SELECT f.term, f.hw_epoch INTO v_term, v_hw FROM vigil_fence() f;
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
    IF v_hw IS NOT NULL AND (p_source >= v_hw OR p_target >= v_hw) THEN
        verdict := 10; x1 := v_hw; RETURN;
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
    -- Surround probes: see 0001_initial.sql for the plans.
    SELECT source_epoch, target_epoch INTO v_src, v_tgt FROM signed_attestations
        WHERE validator_id = v_id AND target_epoch > p_target AND source_epoch + 0 < p_source
        ORDER BY validator_id, target_epoch LIMIT 1;
    IF FOUND THEN
        verdict := 8; x1 := v_src; x2 := v_tgt; RETURN;
    END IF;
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

-- ---------------------------------------------------------------------------
-- Keys and imports
-- ---------------------------------------------------------------------------

-- Enables or disables a key (registering it if new). Verdict 0 or 2 (fenced).
-- While the key has an import marker (import_progress, chunked imports), the
-- flag is recorded in the marker for the import's end and the key stays disabled.
CREATE OR REPLACE FUNCTION vigil_set_enabled(
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
    UPDATE import_progress SET was_enabled = p_enabled WHERE validator_id = v_id;
    IF NOT FOUND THEN
        UPDATE validators SET enabled = p_enabled WHERE id = v_id AND enabled IS DISTINCT FROM p_enabled;
    END IF;
    verdict := 0;
END
$$;

-- Merges one chunk of a validator entry (the set-based merge of
-- vigil_import_validator, 0003) under both of the key's advisory locks, and
-- handles the marker: the first chunk of a multi-chunk entry writes (or takes
-- over) it and disables the key; a later chunk merges only if the marker
-- carries its import id (verdict 11 otherwise, nothing written) and marks it
-- touched; the last chunk sets the watermarks given where the key has none,
-- deletes the marker and restores the recorded flag. A one-chunk entry (first
-- and last) writes no marker and clears one left by an interrupted import.
-- A first chunk (one-chunk entries too) that finds another import's marker
-- touched less than p_idle_ms milliseconds ago (database clock) is refused
-- with verdict 12 and writes nothing: that import is still running, and the
-- key must stay refused until it ends. An older marker is an interrupted
-- import's, and is taken over (or cleared).
-- Verdicts: 0 merged, 2 fenced, 3 genesis root mismatch, 11 import conflict,
-- 12 import in progress.
DROP FUNCTION IF EXISTS vigil_import_chunk(bigint, bytea, bytea, bigint, boolean, boolean, bigint[], bytea[], bigint[], bigint[], bytea[], bigint, bigint, bigint);
CREATE OR REPLACE FUNCTION vigil_import_chunk(
    p_term bigint, p_gvr bytea, p_pubkey bytea, p_import_id bigint, p_first boolean, p_last boolean,
    p_slots bigint[], p_block_roots bytea[],
    p_sources bigint[], p_targets bigint[], p_att_roots bytea[],
    p_lw_slot bigint, p_lw_source bigint, p_lw_target bigint, p_idle_ms bigint,
    OUT verdict smallint, OUT x1 bigint, OUT xroot bytea
) LANGUAGE plpgsql AS $$
DECLARE
    v_term    bigint;
    v_gvr     bytea;
    v_id      bigint;
    v_was     boolean;
    v_owner   bigint;
    v_touched timestamptz;
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

    SELECT was_enabled, import_id, touched_at INTO v_was, v_owner, v_touched FROM import_progress WHERE validator_id = v_id;
    IF p_first AND v_owner IS NOT NULL AND v_owner <> p_import_id
       AND v_touched > now() - make_interval(secs => p_idle_ms / 1000.0) THEN
        verdict := 12; x1 := (extract(epoch FROM now() - v_touched) * 1000)::bigint; RETURN;
    END IF;
    IF p_first AND NOT p_last THEN
        IF v_owner IS NOT NULL THEN
            UPDATE import_progress SET import_id = p_import_id, touched_at = now() WHERE validator_id = v_id;
        ELSE
            INSERT INTO import_progress (validator_id, was_enabled, import_id, touched_at)
            SELECT id, enabled, p_import_id, now() FROM validators WHERE id = v_id;
            UPDATE validators SET enabled = false WHERE id = v_id;
        END IF;
    ELSIF NOT p_first THEN
        IF v_owner IS NULL OR v_owner <> p_import_id THEN
            verdict := 11; RETURN;
        END IF;
        UPDATE import_progress SET touched_at = now() WHERE validator_id = v_id;
    END IF;

    INSERT INTO signed_blocks AS b (validator_id, slot, signing_root)
    SELECT v_id, m.slot,
           CASE WHEN count(*) = count(m.root) AND count(DISTINCT m.root) = 1
                THEN (array_agg(m.root))[1] END
    FROM unnest(p_slots, p_block_roots) AS m(slot, root)
    GROUP BY m.slot
    ON CONFLICT (validator_id, slot) DO UPDATE SET
        signing_root = CASE WHEN b.signing_root = excluded.signing_root THEN b.signing_root ELSE NULL END;

    INSERT INTO signed_attestations AS a (validator_id, target_epoch, source_epoch, signing_root)
    SELECT v_id, m.target, max(m.source),
           CASE WHEN count(DISTINCT m.source) = 1 AND count(*) = count(m.root) AND count(DISTINCT m.root) = 1
                THEN (array_agg(m.root))[1] END
    FROM unnest(p_targets, p_sources, p_att_roots) AS m(target, source, root)
    GROUP BY m.target
    ON CONFLICT (validator_id, target_epoch) DO UPDATE SET
        source_epoch = greatest(a.source_epoch, excluded.source_epoch),
        signing_root = CASE WHEN a.source_epoch = excluded.source_epoch AND a.signing_root = excluded.signing_root
            THEN a.signing_root ELSE NULL END;

    IF p_last THEN
        UPDATE validators SET
            lw_slot   = coalesce(lw_slot, p_lw_slot),
            lw_source = CASE WHEN lw_source IS NULL THEN p_lw_source ELSE lw_source END,
            lw_target = CASE WHEN lw_source IS NULL THEN p_lw_target ELSE lw_target END
        WHERE id = v_id
          AND ((lw_slot IS NULL AND p_lw_slot IS NOT NULL) OR (lw_source IS NULL AND p_lw_source IS NOT NULL));
        IF v_was IS NOT NULL THEN
            DELETE FROM import_progress WHERE validator_id = v_id;
            UPDATE validators SET enabled = v_was WHERE id = v_id;
        END IF;
    END IF;
    verdict := 0;
END
$$;

-- Merges one validator's interchange history (slashing.MergeBlock and
-- slashing.MergeAttestation, written in SQL; messages in array order), and
-- sets the low watermarks given (slashing.ImportWatermarks, NULL = none)
-- where the key has none. Verdict 0, 2 (fenced) or 3 (genesis root
-- mismatch; nothing imported). Each of the entry's blocks and votes is merged
-- with one set-based statement: messages that repeat a slot or target inside
-- the entry are first merged among themselves (the largest source; a root only
-- if every copy has the same source and the same known root), then merged with
-- the recorded row. Superseded by vigil_import_chunk (the store no longer calls
-- it); kept so that the schema stays that of version 4.
CREATE OR REPLACE FUNCTION vigil_import_validator(
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

    INSERT INTO signed_blocks AS b (validator_id, slot, signing_root)
    SELECT v_id, m.slot,
           CASE WHEN count(*) = count(m.root) AND count(DISTINCT m.root) = 1
                THEN (array_agg(m.root))[1] END
    FROM unnest(p_slots, p_block_roots) AS m(slot, root)
    GROUP BY m.slot
    ON CONFLICT (validator_id, slot) DO UPDATE SET
        signing_root = CASE WHEN b.signing_root = excluded.signing_root THEN b.signing_root ELSE NULL END;

    INSERT INTO signed_attestations AS a (validator_id, target_epoch, source_epoch, signing_root)
    SELECT v_id, m.target, max(m.source),
           CASE WHEN count(DISTINCT m.source) = 1 AND count(*) = count(m.root) AND count(DISTINCT m.root) = 1
                THEN (array_agg(m.root))[1] END
    FROM unnest(p_targets, p_sources, p_att_roots) AS m(target, source, root)
    GROUP BY m.target
    ON CONFLICT (validator_id, target_epoch) DO UPDATE SET
        source_epoch = greatest(a.source_epoch, excluded.source_epoch),
        signing_root = CASE WHEN a.source_epoch = excluded.source_epoch AND a.signing_root = excluded.signing_root
            THEN a.signing_root ELSE NULL END;

    UPDATE validators SET
        lw_slot   = coalesce(lw_slot, p_lw_slot),
        lw_source = CASE WHEN lw_source IS NULL THEN p_lw_source ELSE lw_source END,
        lw_target = CASE WHEN lw_source IS NULL THEN p_lw_target ELSE lw_target END
    WHERE id = v_id
      AND ((lw_slot IS NULL AND p_lw_slot IS NOT NULL) OR (lw_source IS NULL AND p_lw_source IS NOT NULL));
    verdict := 0;
END
$$;

-- ---------------------------------------------------------------------------
-- Fence and maintenance
-- ---------------------------------------------------------------------------

-- Changes the fencing term (never lowers it). The EXCLUSIVE lock on the
-- fence table waits for every write in flight (each holds ROW SHARE on the
-- fence table from vigil_fence_term until its commit) and queues every
-- later write behind this transaction. Returns the term now current (the
-- larger of the old one and p_term).
CREATE OR REPLACE FUNCTION vigil_set_term(p_term bigint) RETURNS bigint LANGUAGE plpgsql AS $$
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

-- Sets the high watermark (p_slot and p_epoch both NULL: removes it).
-- Verdict 0 or 2 (fenced). Like vigil_set_term it takes the fence table in
-- EXCLUSIVE mode first, so it waits for every write in flight and every
-- later write reads the new value; then it checks the writer's term (read
-- after the lock: the newest committed term) and updates the fence row.
CREATE OR REPLACE FUNCTION vigil_set_high_watermark(
    p_term bigint, p_slot bigint, p_epoch bigint,
    OUT verdict smallint, OUT x1 bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_term bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'vigil: slashing-protection writes need READ COMMITTED, not %',
            current_setting('transaction_isolation') USING ERRCODE = 'invalid_transaction_state';
    END IF;
    IF current_setting('synchronous_commit') = 'off' THEN
        PERFORM set_config('synchronous_commit', 'on', true);
    END IF;
    LOCK TABLE fence IN EXCLUSIVE MODE;
    SELECT term INTO STRICT v_term FROM fence WHERE id = 1;
    IF v_term IS DISTINCT FROM p_term THEN
        verdict := 2; x1 := v_term; RETURN;
    END IF;
    UPDATE fence SET hw_slot = p_slot, hw_epoch = p_epoch WHERE id = 1;
    verdict := 0;
END
$$;

-- Raises the low watermarks of the keys p_ids and p_pubkeys (registering
-- unknown pubkeys; callers pass them sorted and without duplicates, so that
-- concurrent registrations cannot deadlock) to at least p_slot (blocks) and
-- p_epoch (source and target): slashing.RaisedWatermarks. Each key is locked
-- (both kinds) before its row is read and updated. Verdict 0 or 2 (fenced);
-- changed = the number of keys whose watermarks moved.
CREATE OR REPLACE FUNCTION vigil_raise_low_watermarks(
    p_term bigint, p_ids bigint[], p_pubkeys bytea[], p_slot bigint, p_epoch bigint,
    OUT verdict smallint, OUT x1 bigint, OUT changed integer
) LANGUAGE plpgsql AS $$
DECLARE
    v_term bigint;
    v_ids  bigint[] := coalesce(p_ids, '{}');
    v_pk   bytea;
    v_id   bigint;
BEGIN
    v_term := vigil_fence_term();
    IF v_term IS DISTINCT FROM p_term THEN
        verdict := 2; x1 := v_term; RETURN;
    END IF;
    changed := 0;
    FOREACH v_pk IN ARRAY coalesce(p_pubkeys, '{}') LOOP
        v_ids := v_ids || vigil_validator_id(v_pk);
    END LOOP;
    FOR v_id IN SELECT d.i FROM (SELECT DISTINCT u.i FROM unnest(v_ids) AS u(i)) d ORDER BY d.i % 2147483648, d.i LOOP
        PERFORM vigil_lock_key_both(v_id);
        UPDATE validators SET
            lw_slot   = greatest(lw_slot, p_slot),
            lw_source = greatest(lw_source, p_epoch),
            lw_target = greatest(lw_target, p_epoch)
        WHERE id = v_id
          AND (lw_slot IS NULL OR lw_slot < p_slot OR lw_source IS NULL OR lw_source < p_epoch OR lw_target < p_epoch);
        IF FOUND THEN
            changed := changed + 1;
        END IF;
    END LOOP;
    verdict := 0;
END
$$;

-- Prunes the keys p_ids, in array order (callers sort them by
-- (id % 2^31, id), the lock order), one key at a time under both of its
-- locks, following slashing.PruneCuts and slashing.PrunedWatermarks:
--
--   newest slot n (max recorded slot): slot cut = n - p_keep_slots + 1 when
--     n + 1 > p_keep_slots; the slot watermark is raised to it;
--   newest target m: target cut = m - p_keep_epochs + 1 when m + 1 >
--     p_keep_epochs; the target watermark is raised to it (0 if none yet),
--     and the source watermark (0 if none yet) to the largest source among
--     the votes with a target below the new target watermark;
--
-- and, when a watermark moved, blocks below the slot watermark and votes
-- below the target watermark are deleted. p_keep_slots (KeepEpochs *
-- SlotsPerEpoch) and p_keep_epochs are numeric: u64 values (and their
-- product) that BIGINT cannot hold; the arithmetic on stored values is exact
-- in numeric (stored = value - 2^63, so stored(n - k + 1) = stored(n) - k + 1).
-- As in slashing.PruneCuts, whose u64 n + 1 wraps to 0 for n = 2^64 - 1, a
-- newest slot or target of 2^64 - 1 gives no cut.
--
-- After a key that brought the rows deleted by this call to p_budget or
-- more, the call stops and commits (bounding how long keys stay locked):
-- done = the number of keys of p_ids handled. Verdict 0 or 2 (fenced).
CREATE OR REPLACE FUNCTION vigil_prune(
    p_term bigint, p_ids bigint[], p_keep_slots numeric, p_keep_epochs numeric, p_budget bigint,
    OUT verdict smallint, OUT x1 bigint, OUT done integer,
    OUT n_validators integer, OUT n_blocks bigint, OUT n_attestations bigint
) LANGUAGE plpgsql AS $$
DECLARE
    c_shift CONSTANT numeric := 9223372036854775808;
    c_max   CONSTANT bigint := 9223372036854775807; -- stored 2^64 - 1
    v_term    bigint;
    v_id      bigint;
    v_lw_slot bigint;
    v_lw_src  bigint;
    v_lw_tgt  bigint;
    v_newest  bigint;
    v_slot    bigint;
    v_src     bigint;
    v_tgt     bigint;
    v_below   bigint;
    v_n       bigint;
BEGIN
    v_term := vigil_fence_term();
    IF v_term IS DISTINCT FROM p_term THEN
        verdict := 2; x1 := v_term; RETURN;
    END IF;
    done := 0; n_validators := 0; n_blocks := 0; n_attestations := 0;
    FOREACH v_id IN ARRAY coalesce(p_ids, '{}') LOOP
        EXIT WHEN n_blocks + n_attestations >= p_budget;
        done := done + 1;
        PERFORM vigil_lock_key_both(v_id);
        SELECT v.lw_slot, v.lw_source, v.lw_target INTO v_lw_slot, v_lw_src, v_lw_tgt
            FROM validators v WHERE v.id = v_id;
        CONTINUE WHEN NOT FOUND;
        v_slot := v_lw_slot; v_src := v_lw_src; v_tgt := v_lw_tgt;
        SELECT max(b.slot) INTO v_newest FROM signed_blocks b WHERE b.validator_id = v_id;
        IF v_newest IS NOT NULL AND v_newest < c_max AND v_newest::numeric + c_shift + 1 > p_keep_slots THEN
            v_slot := greatest(v_lw_slot, (v_newest::numeric - p_keep_slots + 1)::bigint);
        END IF;
        SELECT max(a.target_epoch) INTO v_newest FROM signed_attestations a WHERE a.validator_id = v_id;
        IF v_newest IS NOT NULL AND v_newest < c_max AND v_newest::numeric + c_shift + 1 > p_keep_epochs THEN
            v_tgt := greatest(v_lw_tgt, (v_newest::numeric - p_keep_epochs + 1)::bigint);
            v_src := coalesce(v_lw_src, (-c_shift)::bigint);
            SELECT max(a.source_epoch) INTO v_below FROM signed_attestations a
                WHERE a.validator_id = v_id AND a.target_epoch < v_tgt;
            v_src := greatest(v_src, v_below);
        END IF;
        CONTINUE WHEN v_slot IS NOT DISTINCT FROM v_lw_slot
            AND v_src IS NOT DISTINCT FROM v_lw_src AND v_tgt IS NOT DISTINCT FROM v_lw_tgt;
        UPDATE validators SET lw_slot = v_slot, lw_source = v_src, lw_target = v_tgt WHERE id = v_id;
        n_validators := n_validators + 1;
        IF v_slot IS NOT NULL THEN
            DELETE FROM signed_blocks b WHERE b.validator_id = v_id AND b.slot < v_slot;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            n_blocks := n_blocks + v_n;
        END IF;
        IF v_tgt IS NOT NULL THEN
            DELETE FROM signed_attestations a WHERE a.validator_id = v_id AND a.target_epoch < v_tgt;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            n_attestations := n_attestations + v_n;
        END IF;
    END LOOP;
    verdict := 0;
END
$$;
