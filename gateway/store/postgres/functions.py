"""PostgreSQL: the two operations that take a shared lock, as functions run in one round trip each.

Taking a slot holds its provider's lock row, and creating a job holds its key's row, until commit.
Run from the gateway, each was a transaction of six or seven round trips, every one of them waiting
for a turn of a busy event loop while the lock was held: every replica's takes for a provider, and
every create of one key, formed one line. Run here, the lock is held for the function's own work.

This module is their one source: the start-up's repeatable step (schema.py) makes them again from it,
with CREATE OR REPLACE, on every start. A change to a body is made here, never in a migration; a
change of a function's arguments or result needs a migration that drops the old one first.

The functions decide exactly what the SQLite engine's Python code decides (sqlite/operations.py: `take_slot`,
`create_job`); the tests run both engines through the same cases.
"""

from __future__ import annotations

from gateway.store.slots_schema import NEXT_ROUND, UNFINISHED

# The jobs waiting ahead of `job` in its provider's queue (by round, then age).
_AHEAD = f"""SELECT 1 FROM jobs w WHERE w.provider = p_provider AND w.has_slot = 0
            AND w.status IN {UNFINISHED}
            AND (w.queue_round, w.created_at, w.rowid) < (job.queue_round, job.created_at, job.rowid)"""

# Each of the accounts offered, with the slots it holds now.
_OFFERED = """unnest(p_names, p_limits, p_weights) AS u(name, lim, weight)
        LEFT JOIN slots_held h ON h.provider = p_provider AND h.account = u.name"""

TAKE_SLOT = f"""
    CREATE OR REPLACE FUNCTION take_slot(p_job TEXT, p_epoch BIGINT, p_provider TEXT, p_names TEXT[],
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
            INTO room FROM {_OFFERED};
        -- Counting the jobs ahead first stops at the room there is: a job that fits needs no more.
        IF room > 0 THEN
            SELECT COUNT(*) INTO ahead FROM ({_AHEAD} LIMIT room) AS first_ahead;
        END IF;
        IF ahead + 1 > room THEN
            SELECT COUNT(*) INTO ahead FROM ({_AHEAD}) AS every_ahead;
            RETURN QUERY SELECT ahead + 1 - room, NULL::TEXT;
            RETURN;
        END IF;
        -- The least loaded account under its cap, per unit of weight (then the heavier, then by name).
        SELECT u.name INTO chosen FROM {_OFFERED}
            WHERE COALESCE(h.n, 0) < u.lim
            ORDER BY COALESCE(h.n, 0) / u.weight, -u.weight, u.name COLLATE "C" LIMIT 1;
        UPDATE jobs SET has_slot = 1, account = chosen, started_at = p_now
            WHERE id = p_job AND epoch = p_epoch AND status IN {UNFINISHED};
        IF FOUND THEN
            RETURN QUERY SELECT 0::BIGINT, chosen;
        ELSE
            RETURN QUERY SELECT ahead + 1, NULL::TEXT;
        END IF;
    END $$;
"""

# A new job's lease runs from the moment it is stored, by the database's clock: measured from before the
# call, a create that waited its turn behind a burst of others could be born with its lease lapsed, and
# be taken over, and started again, by the very replica that had just created it.
CREATE_JOB = f"""
    CREATE OR REPLACE FUNCTION create_job(
        p_id TEXT, p_key TEXT, p_model TEXT, p_served_model TEXT, p_provider TEXT, p_prompt TEXT,
        p_effective_prompt TEXT, p_style TEXT, p_options TEXT, p_callback_url TEXT, p_cost BIGINT,
        p_created TEXT, p_owner TEXT, p_epoch BIGINT, p_lease_seconds DOUBLE PRECISION, p_hold BIGINT,
        p_event TEXT, p_balance_mark TEXT,
        p_max_concurrent BIGINT, p_max_queued BIGINT, p_capacity BIGINT,
        p_idem_key TEXT, p_idem_hash TEXT, p_idem_cutoff TEXT)
    RETURNS TABLE (outcome TEXT, balance_now BIGINT, job JSON) LANGUAGE plpgsql
    -- Its plans are made once per session, often while `jobs` has no statistics yet (a fresh
    -- database): a Sort of the "one row" expected looked as cheap as reading the round from the end
    -- of its index, and sorting every job of the provider cost about 4 ms a create at 10 000 jobs.
    SET enable_sort = off
    AS $$
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
                            AND j.status IN {UNFINISHED});
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
            p_epoch, extract(epoch from clock_timestamp()) + p_lease_seconds, 1, p_hold, {NEXT_ROUND.format(key="p_key", provider="p_provider")})
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
"""

# The rows a batch of takes may change, locked first and in one order, as a batch of finishes locks
# them (postgres/progress.py): the providers' lock rows, their slot counts, the keys' slot counts; then each
# take's job, in id order (postgres/calls.py sorts the batch so), as lease renewals and progress writes lock
# jobs. Taken as each take came to them, a take batch and a finish batch, or a lease renewal, could
# each hold a row the other waited for.
_TAKE_LOCKS = """
        INSERT INTO singletons (name, owner, until)
            SELECT DISTINCT 'slots:' || (x.value->>2) COLLATE "C", '', 0 FROM jsonb_array_elements(p_batch) AS x
            ORDER BY 1 ON CONFLICT (name) DO UPDATE SET until = singletons.until;
        PERFORM 1 FROM slots_held h
            WHERE h.provider IN (SELECT x.value->>2 FROM jsonb_array_elements(p_batch) AS x)
            ORDER BY h.provider COLLATE "C", h.account COLLATE "C" FOR NO KEY UPDATE;
        PERFORM 1 FROM slots_held_by_key k
            WHERE k.key_id IN (SELECT j.key_id FROM jobs j
                               WHERE j.id IN (SELECT x.value->>0 FROM jsonb_array_elements(p_batch) AS x))
            ORDER BY k.key_id COLLATE "C" FOR NO KEY UPDATE;"""

# Many creates, and many slot takes, in one statement and one commit (see postgres/calls.py): each element
# of `p_batch` is the array of one call's arguments, and each gets its row, numbered by its place.
_CREATE_JOBS = """
    CREATE OR REPLACE FUNCTION create_jobs(p_batch JSONB)
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
"""

_TAKE_SLOTS = """
    CREATE OR REPLACE FUNCTION take_slots(p_batch JSONB)
    RETURNS TABLE (idx BIGINT, slot_place BIGINT, slot_account TEXT) LANGUAGE plpgsql AS $$
    DECLARE
        a JSONB;
        n BIGINT;
    BEGIN
        -- The slot counts are kept at commit (slots_schema.py); each take here must see the last's.
        SET CONSTRAINTS slots_held_kept IMMEDIATE;{locks}
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
"""

# Every function of this module as it stands (take_slots with its locks taken first, see _TAKE_LOCKS).
FUNCTIONS = TAKE_SLOT + CREATE_JOB + _CREATE_JOBS + _TAKE_SLOTS.format(locks=_TAKE_LOCKS)
