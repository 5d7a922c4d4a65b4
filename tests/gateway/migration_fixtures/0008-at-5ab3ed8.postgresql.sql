-- Migration 8 as main first had it (5ab3ed8): the first bodies of take_slot and create_job.

    
    CREATE FUNCTION take_slot(p_job TEXT, p_epoch BIGINT, p_provider TEXT, p_names TEXT[],
                              p_limits BIGINT[], p_weights DOUBLE PRECISION[], p_now TEXT)
    RETURNS TABLE (slot_place BIGINT, slot_account TEXT) LANGUAGE plpgsql AS $$
    DECLARE
        job RECORD;
        room BIGINT;
        ahead BIGINT := 0;
        chosen TEXT;
    BEGIN
        -- One provider's takers take turns: the upsert holds the lock row until commit.
        INSERT INTO singletons (name, owner, until) VALUES ('slots:' || p_provider, '', 0)
            ON CONFLICT (name) DO UPDATE SET until = singletons.until;
        SELECT j.has_slot, j.account, j.queue_round, j.created_at, j.rowid INTO job
            FROM jobs j WHERE j.id = p_job;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 0::BIGINT, NULL::TEXT;
            RETURN;
        END IF;
        IF job.has_slot = 1 THEN
            RETURN QUERY SELECT 0::BIGINT, job.account;
            RETURN;
        END IF;
        SELECT COALESCE(SUM(u.lim - COALESCE(h.n, 0)) FILTER (WHERE COALESCE(h.n, 0) < u.lim), 0)
            INTO room FROM unnest(p_names, p_limits, p_weights) AS u(name, lim, weight)
        LEFT JOIN slots_held h ON h.provider = p_provider AND h.account = u.name;
        -- Counting the jobs ahead first stops at the room there is: a job that fits needs no more.
        IF room > 0 THEN
            SELECT COUNT(*) INTO ahead FROM (SELECT 1 FROM jobs w WHERE w.provider = p_provider AND w.has_slot = 0
            AND w.status IN ('queued', 'processing')
            AND (w.queue_round, w.created_at, w.rowid) < (job.queue_round, job.created_at, job.rowid) LIMIT room) AS first_ahead;
        END IF;
        IF ahead + 1 > room THEN
            SELECT COUNT(*) INTO ahead FROM (SELECT 1 FROM jobs w WHERE w.provider = p_provider AND w.has_slot = 0
            AND w.status IN ('queued', 'processing')
            AND (w.queue_round, w.created_at, w.rowid) < (job.queue_round, job.created_at, job.rowid)) AS every_ahead;
            RETURN QUERY SELECT ahead + 1 - room, NULL::TEXT;
            RETURN;
        END IF;
        -- The least loaded account under its cap, per unit of weight (then the heavier, then by name).
        SELECT u.name INTO chosen FROM unnest(p_names, p_limits, p_weights) AS u(name, lim, weight)
        LEFT JOIN slots_held h ON h.provider = p_provider AND h.account = u.name
            WHERE COALESCE(h.n, 0) < u.lim
            ORDER BY COALESCE(h.n, 0) / u.weight, -u.weight, u.name COLLATE "C" LIMIT 1;
        UPDATE jobs SET has_slot = 1, account = chosen, started_at = p_now
            WHERE id = p_job AND epoch = p_epoch AND status IN ('queued', 'processing');
        IF FOUND THEN
            RETURN QUERY SELECT 0::BIGINT, chosen;
        ELSE
            RETURN QUERY SELECT ahead + 1, NULL::TEXT;
        END IF;
    END $$;

    CREATE FUNCTION create_job(
        p_id TEXT, p_key TEXT, p_model TEXT, p_served_model TEXT, p_provider TEXT, p_prompt TEXT,
        p_effective_prompt TEXT, p_style TEXT, p_options TEXT, p_callback_url TEXT, p_cost BIGINT,
        p_created TEXT, p_owner TEXT, p_epoch BIGINT, p_lease_until DOUBLE PRECISION, p_hold BIGINT,
        p_event TEXT, p_balance_mark TEXT,
        p_max_concurrent BIGINT, p_max_queued BIGINT, p_capacity BIGINT,
        p_idem_key TEXT, p_idem_hash TEXT, p_idem_cutoff TEXT)
    RETURNS TABLE (outcome TEXT, balance_now BIGINT, job JSON) LANGUAGE plpgsql AS $$
    DECLARE
        seen RECORD;
        held BIGINT;
        waiting BIGINT;
        funds BIGINT;
        made jobs;
    BEGIN
        -- The key's row first: one key's creates take turns, so the idempotency check and the counts
        -- below see every earlier create of the key.
        SELECT k.balance INTO funds FROM api_keys k WHERE k.id = p_key FOR NO KEY UPDATE;
        IF p_idem_key IS NOT NULL THEN
            SELECT i.body_hash, i.job_id INTO seen FROM idempotency i
                WHERE i.key_id = p_key AND i.idem_key = p_idem_key AND i.created_at > p_idem_cutoff;
            IF FOUND THEN
                IF seen.body_hash <> p_idem_hash THEN
                    RETURN QUERY SELECT 'idempotency_conflict', NULL::BIGINT, NULL::JSON;
                ELSE
                    RETURN QUERY SELECT 'replay', NULL::BIGINT, row_to_json(j) FROM jobs j WHERE j.id = seen.job_id;
                END IF;
                RETURN;
            END IF;
        END IF;
        IF p_max_concurrent IS NOT NULL OR p_max_queued IS NOT NULL THEN
            held := COALESCE((SELECT s.n FROM slots_held_by_key s WHERE s.key_id = p_key), 0);
            -- this job (not inserted yet) is one of the waiting
            waiting := 1 + (SELECT COUNT(*) FROM jobs j WHERE j.key_id = p_key AND j.has_slot = 0
                            AND j.status IN ('queued', 'processing'));
            IF p_max_concurrent IS NOT NULL AND held + waiting > p_max_concurrent THEN
                RETURN QUERY SELECT 'too_many_running', NULL::BIGINT, NULL::JSON;
                RETURN;
            END IF;
            IF p_max_queued IS NOT NULL AND waiting > p_max_queued AND p_capacity IS NOT NULL THEN
                waiting := waiting - GREATEST(0, p_capacity
                    - (SELECT COALESCE(SUM(s.n), 0) FROM slots_held s WHERE s.provider = p_provider));
            END IF;
            IF p_max_queued IS NOT NULL AND waiting > p_max_queued THEN
                RETURN QUERY SELECT 'too_many_waiting', NULL::BIGINT, NULL::JSON;
                RETURN;
            END IF;
        END IF;
        IF funds IS NOT NULL AND funds < p_cost THEN
            RETURN QUERY SELECT 'insufficient_tokens', funds, NULL::JSON;
            RETURN;
        END IF;
        INSERT INTO jobs (id, key_id, model, served_model, provider, prompt, effective_prompt, style,
            options, callback_url, status, cost, created_at, updated_at, owner, epoch, lease_until,
            last_event_id, hold, queue_round)
            VALUES (p_id, p_key, p_model, p_served_model, p_provider, p_prompt, p_effective_prompt,
            p_style, p_options, p_callback_url, 'queued', p_cost, p_created, p_created, p_owner,
            p_epoch, p_lease_until, 1, p_hold, (SELECT CASE WHEN mine > head THEN mine ELSE head END FROM (SELECT COALESCE((SELECT MAX(queue_round) + 1 FROM jobs WHERE key_id = p_key AND provider = p_provider AND status IN ('queued', 'processing')), 0) AS mine, COALESCE((SELECT MIN(queue_round) FROM jobs WHERE provider = p_provider AND has_slot = 0 AND status IN ('queued', 'processing')), 0) AS head) AS rounds))
            RETURNING * INTO made;
        UPDATE api_keys SET balance = balance - p_cost WHERE id = p_key RETURNING balance INTO funds;
        INSERT INTO ledger (key_id, delta, reason, job_id, balance_after, created_at)
            VALUES (p_key, -p_cost, 'debit', p_id, funds, p_created);
        INSERT INTO job_events (job_id, seq, data, created_at)
            VALUES (p_id, 1, replace(p_event, p_balance_mark, funds::TEXT), p_created);
        IF p_idem_key IS NOT NULL THEN  -- a stale record (past the TTL) is replaced
            INSERT INTO idempotency (key_id, idem_key, body_hash, job_id, created_at)
                VALUES (p_key, p_idem_key, p_idem_hash, p_id, p_created)
                ON CONFLICT (key_id, idem_key) DO UPDATE SET body_hash = excluded.body_hash,
                job_id = excluded.job_id, created_at = excluded.created_at;
        END IF;
        RETURN QUERY SELECT 'created', funds, row_to_json(made);
    END $$;
