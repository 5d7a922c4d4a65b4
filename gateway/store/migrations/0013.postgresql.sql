-- 0013: on PostgreSQL, a batch of slot takes locks the rows it may change first, in the order a
-- batch of finishes locks them (see pg_functions.py)

    DROP FUNCTION take_slots;
    CREATE FUNCTION take_slots(p_batch JSONB)
    RETURNS TABLE (idx BIGINT, slot_place BIGINT, slot_account TEXT) LANGUAGE plpgsql AS $$
    DECLARE
        a JSONB;
        n BIGINT;
    BEGIN
        -- The slot counts are kept at commit (slots_schema.py); each take here must see the last's.
        SET CONSTRAINTS slots_held_kept IMMEDIATE;
        INSERT INTO singletons (name, owner, until)
            SELECT DISTINCT 'slots:' || (x.value->>2) COLLATE "C", '', 0 FROM jsonb_array_elements(p_batch) AS x
            ORDER BY 1 ON CONFLICT (name) DO UPDATE SET until = singletons.until;
        PERFORM 1 FROM slots_held h
            WHERE h.provider IN (SELECT x.value->>2 FROM jsonb_array_elements(p_batch) AS x)
            ORDER BY h.provider COLLATE "C", h.account COLLATE "C" FOR NO KEY UPDATE;
        PERFORM 1 FROM slots_held_by_key k
            WHERE k.key_id IN (SELECT j.key_id FROM jobs j
                               WHERE j.id IN (SELECT x.value->>0 FROM jsonb_array_elements(p_batch) AS x))
            ORDER BY k.key_id COLLATE "C" FOR NO KEY UPDATE;
        FOR a, n IN SELECT x.value, x.ordinality FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS x
        LOOP
            RETURN QUERY SELECT n, t.slot_place, t.slot_account FROM take_slot(a->>0, (a->>1)::BIGINT, a->>2,
                ARRAY(SELECT e FROM jsonb_array_elements_text(a->3) WITH ORDINALITY AS l(e, o) ORDER BY o),
                ARRAY(SELECT e::BIGINT FROM jsonb_array_elements_text(a->4) WITH ORDINALITY AS l(e, o) ORDER BY o),
                ARRAY(SELECT e::DOUBLE PRECISION FROM jsonb_array_elements_text(a->5) WITH ORDINALITY AS l(e, o)
                      ORDER BY o),
                a->>6) AS t;
        END LOOP;
    END $$;
