-- Schema version 4: chunked imports (see package slashing, "Chunked imports").
--
-- import_progress holds a marker per key whose multi-chunk import is in
-- progress (or was interrupted): while it exists the key's validators.enabled
-- is false, so vigil_sign_block / vigil_sign_attestation refuse it (verdict 4,
-- validator_disabled) with no change to the signature functions; was_enabled
-- is the flag restored by the import's last chunk, import_id the random id of
-- the import that owns the marker.
CREATE TABLE import_progress (
    validator_id bigint  PRIMARY KEY REFERENCES validators (id),
    was_enabled  boolean NOT NULL,
    import_id    bigint  NOT NULL
);

-- Merges one chunk of a validator entry (the set-based merge of
-- vigil_import_validator, 0003) under both of the key's advisory locks, and
-- handles the marker: the first chunk of a multi-chunk entry writes (or takes
-- over) it and disables the key; a later chunk merges only if the marker
-- carries its import id (verdict 11 otherwise, nothing written); the last
-- chunk sets the watermarks given where the key has none, deletes the marker
-- and restores the recorded flag. A one-chunk entry (first and last) writes no
-- marker and clears one left by an interrupted import.
-- Verdicts: 0 merged, 2 fenced, 3 genesis root mismatch, 11 import conflict.
CREATE FUNCTION vigil_import_chunk(
    p_term bigint, p_gvr bytea, p_pubkey bytea, p_import_id bigint, p_first boolean, p_last boolean,
    p_slots bigint[], p_block_roots bytea[],
    p_sources bigint[], p_targets bigint[], p_att_roots bytea[],
    p_lw_slot bigint, p_lw_source bigint, p_lw_target bigint,
    OUT verdict smallint, OUT x1 bigint, OUT xroot bytea
) LANGUAGE plpgsql AS $$
DECLARE
    v_term  bigint;
    v_gvr   bytea;
    v_id    bigint;
    v_was   boolean;
    v_owner bigint;
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

    SELECT was_enabled, import_id INTO v_was, v_owner FROM import_progress WHERE validator_id = v_id;
    IF p_first AND NOT p_last THEN
        IF FOUND THEN
            UPDATE import_progress SET import_id = p_import_id WHERE validator_id = v_id;
        ELSE
            INSERT INTO import_progress (validator_id, was_enabled, import_id)
            SELECT id, enabled, p_import_id FROM validators WHERE id = v_id;
            UPDATE validators SET enabled = false WHERE id = v_id;
        END IF;
    ELSIF NOT p_first AND (v_owner IS NULL OR v_owner <> p_import_id) THEN
        verdict := 11; RETURN;
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

-- vigil_set_enabled (0001) with the marker: while the key has one, the flag
-- is recorded in it for the import's end and the key stays disabled.
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
