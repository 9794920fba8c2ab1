-- Schema version 8: when an import last wrote its marker, so that a new import of a key tells
-- an import still running (refused, verdict 12) from one that was interrupted (taken over): see
-- package slashing, "Chunked imports". Markers from before this version count as interrupted (no
-- import runs across an upgrade). vigil_import_chunk gains the idle timeout as a parameter.
ALTER TABLE import_progress ADD COLUMN touched_at timestamptz NOT NULL DEFAULT '-infinity';

DROP FUNCTION vigil_import_chunk(bigint, bytea, bytea, bigint, boolean, boolean, bigint[], bytea[], bigint[], bigint[], bytea[], bigint, bigint, bigint);

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
CREATE FUNCTION vigil_import_chunk(
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

