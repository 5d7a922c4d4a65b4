-- 0010: on PostgreSQL, many creates, and many slot takes, in one statement (see pg_calls.py)

    
    CREATE FUNCTION create_jobs(p_batch JSONB)
    RETURNS TABLE (idx BIGINT, outcome TEXT, balance_now BIGINT, job JSON) LANGUAGE plpgsql AS $$
    DECLARE
        a JSONB;
        n BIGINT;
    BEGIN
        FOR a, n IN SELECT x.value, x.ordinality FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS x
        LOOP
            RETURN QUERY SELECT n, c.outcome, c.balance_now, c.job FROM create_job(
                a->>0, a->>1, a->>2, a->>3, a->>4, a->>5, a->>6, a->>7, a->>8, a->>9, (a->>10)::BIGINT,
                a->>11, a->>12, (a->>13)::BIGINT, (a->>14)::DOUBLE PRECISION, (a->>15)::BIGINT,
                a->>16, a->>17, (a->>18)::BIGINT, (a->>19)::BIGINT, (a->>20)::BIGINT,
                a->>21, a->>22, a->>23) AS c;
        END LOOP;
    END $$;

    CREATE FUNCTION take_slots(p_batch JSONB)
    RETURNS TABLE (idx BIGINT, slot_place BIGINT, slot_account TEXT) LANGUAGE plpgsql AS $$
    DECLARE
        a JSONB;
        n BIGINT;
    BEGIN
        -- The slot counts are kept at commit (slots_schema.py); each take here must see the last's.
        SET CONSTRAINTS slots_held_kept IMMEDIATE;
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
