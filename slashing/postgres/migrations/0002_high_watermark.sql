-- Vigil slashing-protection database, schema version 2 (PostgreSQL): the
-- database-wide high watermark and the maintenance functions (pruning and
-- low-watermark repair: slashing.Maintainer).
--
-- The high watermark lives in the fence row, not in a table of its own (and
-- not in metadata, whose row exists only once the genesis root is pinned):
--
--   * every write already reads that row (SELECT ... FOR SHARE, see
--     vigil_fence_term), so the signature functions get the high watermark
--     from the statement they already run: no extra probe, still one
--     statement and one round trip per signature;
--   * vigil_set_high_watermark changes it the way vigil_set_term changes the
--     term, under LOCK TABLE fence IN EXCLUSIVE MODE, so the fencing argument
--     (Go package doc) carries over unchanged: it waits for every write in
--     flight, later writes queue behind it, and once it returns every write
--     that commits has been checked against the new value. A key can be
--     exported for migration right after setting the high watermark: nothing
--     above it commits after the export's snapshot.
--
-- NULL = no high watermark; slot and epoch are set together. Values use the
-- XOR 2^63 mapping of the schema. Blocks at or above hw_slot and votes with a
-- source or target at or above hw_epoch are refused (verdict 10).
ALTER TABLE fence
    ADD COLUMN hw_slot  bigint,
    ADD COLUMN hw_epoch bigint,
    ADD CONSTRAINT fence_high_watermark_pair CHECK ((hw_slot IS NULL) = (hw_epoch IS NULL));

-- ---------------------------------------------------------------------------
-- Verdict codes, added to those of 0001_initial.sql:
--  10 above_high_watermark  blocks: x1 = HW slot; votes: x1 = HW epoch
-- Order of the checks (slashing.CheckBlock / CheckAttestation): blocks:
-- enabled, high watermark, low watermark, same slot; votes: enabled, source
-- after target, high watermark, low watermark, same target, surrounding,
-- surrounded.

-- The fence check of the signature functions: vigil_fence_term, returning
-- the high watermark of the same (locked) row as well.
CREATE FUNCTION vigil_fence(OUT term bigint, OUT hw_slot bigint, OUT hw_epoch bigint) LANGUAGE plpgsql AS $$
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

-- One implementation of the fence check for every write.
CREATE OR REPLACE FUNCTION vigil_fence_term() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_term bigint;
BEGIN
    SELECT f.term INTO v_term FROM vigil_fence() f;
    RETURN v_term;
END
$$;

-- Both advisory locks of a key, blocks first (as imports and enable/disable
-- take them). Callers that lock several keys in one transaction lock them in
-- ascending (id % 2^31, id) order, so that every multi-key transaction takes
-- locks in one global order (key, then blocks before attestations), which
-- single-key transactions respect too: no deadlock between them.
CREATE FUNCTION vigil_lock_key_both(p_id bigint) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(1447493633, (p_id % 2147483648)::integer),
           pg_advisory_xact_lock(1447493634, (p_id % 2147483648)::integer)
$$;

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

-- Sets the high watermark (p_slot and p_epoch both NULL: removes it).
-- Verdict 0 or 2 (fenced). Like vigil_set_term it takes the fence table in
-- EXCLUSIVE mode first, so it waits for every write in flight and every
-- later write reads the new value; then it checks the writer's term (read
-- after the lock: the newest committed term) and updates the fence row.
CREATE FUNCTION vigil_set_high_watermark(
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
CREATE FUNCTION vigil_raise_low_watermarks(
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
CREATE FUNCTION vigil_prune(
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
