-- 0007: the slots held, counted per provider and account and per key (see slots_schema.py), so that
-- taking a slot and creating a job read one row instead of every job in flight; the key's
-- unfinished jobs by provider and round replace its unfinished jobs (a prefix of them)

    
    CREATE TABLE slots_held (
        provider TEXT NOT NULL,
        account TEXT NOT NULL,  -- '' for a slot held on no named account (jobs from before accounts)
        n BIGINT NOT NULL,
        PRIMARY KEY (provider, account)
    );
    CREATE TABLE slots_held_by_key (
        key_id TEXT NOT NULL PRIMARY KEY,
        n BIGINT NOT NULL
    );
    INSERT INTO slots_held (provider, account, n)
        SELECT provider, COALESCE(account, ''), COUNT(*) FROM jobs
        WHERE has_slot = 1 AND status IN ('queued', 'processing') GROUP BY provider, COALESCE(account, '');
    INSERT INTO slots_held_by_key (key_id, n)
        SELECT key_id, COUNT(*) FROM jobs WHERE has_slot = 1 AND status IN ('queued', 'processing') GROUP BY key_id;
    -- the jobs waiting for a slot, in queue order (a job's place, the head's round), and per key
    CREATE INDEX jobs_waiting ON jobs (provider, has_slot, queue_round, created_at)
        WHERE has_slot = 0 AND status IN ('queued', 'processing');
    CREATE INDEX jobs_waiting_by_key ON jobs (key_id, has_slot) WHERE has_slot = 0 AND status IN ('queued', 'processing');
    -- a key's last round in a provider's queue
    CREATE INDEX jobs_unfinished_rounds ON jobs (key_id, provider, queue_round)
        WHERE status IN ('queued', 'processing');

    CREATE TRIGGER slots_held_kept AFTER UPDATE OF status, has_slot, account ON jobs
    WHEN (OLD.has_slot = 1 AND OLD.status IN ('queued', 'processing')) <> (NEW.has_slot = 1 AND NEW.status IN ('queued', 'processing')) OR (OLD.has_slot = 1 AND OLD.status IN ('queued', 'processing') AND NEW.has_slot = 1 AND NEW.status IN ('queued', 'processing') AND COALESCE(OLD.account, '') <> COALESCE(NEW.account, ''))
    BEGIN
        UPDATE slots_held SET n = n - 1
            WHERE provider = OLD.provider AND account = COALESCE(OLD.account, '') AND OLD.has_slot = 1 AND OLD.status IN ('queued', 'processing');
        UPDATE slots_held_by_key SET n = n - 1 WHERE key_id = OLD.key_id AND OLD.has_slot = 1 AND OLD.status IN ('queued', 'processing');
        INSERT INTO slots_held (provider, account, n)
            SELECT NEW.provider, COALESCE(NEW.account, ''), 1 WHERE NEW.has_slot = 1 AND NEW.status IN ('queued', 'processing')
            ON CONFLICT (provider, account) DO UPDATE SET n = slots_held.n + 1;
        INSERT INTO slots_held_by_key (key_id, n) SELECT NEW.key_id, 1 WHERE NEW.has_slot = 1 AND NEW.status IN ('queued', 'processing')
            ON CONFLICT (key_id) DO UPDATE SET n = slots_held_by_key.n + 1;
    END;
    DROP INDEX jobs_unfinished_by_key;
