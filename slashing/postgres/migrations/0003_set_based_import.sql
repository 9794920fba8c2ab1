-- Schema version 3: vigil_import_validator merges an entry's blocks and votes with one
-- set-based statement each instead of one INSERT per message (an interchange of 10,000
-- validators × 1,000 votes spent most of its import time in that loop). Semantics are
-- unchanged (slashing.MergeBlock / slashing.MergeAttestation): messages that repeat a slot or
-- target inside the entry are first merged among themselves (the same fold the loop made, in
-- any order: the largest source; a root only if every copy has the same source and the same
-- known root), then merged with the recorded row.
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
