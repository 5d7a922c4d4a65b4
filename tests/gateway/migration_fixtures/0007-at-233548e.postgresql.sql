-- Migration 7 as main had it at 233548e, before b70fd88 put has_slot in the waiting-job indexes.

    
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
    CREATE INDEX jobs_waiting ON jobs (provider, queue_round, created_at)
        WHERE has_slot = 0 AND status IN ('queued', 'processing');
    CREATE INDEX jobs_waiting_by_key ON jobs (key_id) WHERE has_slot = 0 AND status IN ('queued', 'processing');
    -- a key's last round in a provider's queue
    CREATE INDEX jobs_unfinished_rounds ON jobs (key_id, provider, queue_round)
        WHERE status IN ('queued', 'processing');

    CREATE FUNCTION slots_held_kept() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.has_slot = 1 AND OLD.status IN ('queued', 'processing') THEN
        UPDATE slots_held SET n = n - 1 WHERE provider = OLD.provider AND account = COALESCE(OLD.account, '');
        UPDATE slots_held_by_key SET n = n - 1 WHERE key_id = OLD.key_id;
        END IF;
        IF NEW.has_slot = 1 AND NEW.status IN ('queued', 'processing') THEN
        INSERT INTO slots_held (provider, account, n) VALUES (NEW.provider, COALESCE(NEW.account, ''), 1)
            ON CONFLICT (provider, account) DO UPDATE SET n = slots_held.n + 1;
        INSERT INTO slots_held_by_key (key_id, n) VALUES (NEW.key_id, 1)
            ON CONFLICT (key_id) DO UPDATE SET n = slots_held_by_key.n + 1;
        END IF;
        RETURN NULL;
    END $$;
    CREATE CONSTRAINT TRIGGER slots_held_kept AFTER UPDATE OF status, has_slot, account ON jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ((OLD.has_slot = 1 AND OLD.status IN ('queued', 'processing')) <> (NEW.has_slot = 1 AND NEW.status IN ('queued', 'processing')) OR (OLD.has_slot = 1 AND OLD.status IN ('queued', 'processing') AND NEW.has_slot = 1 AND NEW.status IN ('queued', 'processing') AND COALESCE(OLD.account, '') <> COALESCE(NEW.account, '')))
    EXECUTE FUNCTION slots_held_kept();
    DROP INDEX jobs_unfinished_by_key;
