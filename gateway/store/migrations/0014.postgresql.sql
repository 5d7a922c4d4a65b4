-- 0014: what edited migrations left behind. A deployment made before a migration was edited lacks what
-- the edit changed; each statement here makes it as a fresh database has it, and changes nothing where
-- it is so already.

-- the periodic look for undelivered webhooks (added to migration 3 after it had run)
CREATE INDEX IF NOT EXISTS jobs_with_callback_by_completion ON jobs (completed_at) WHERE callback_url IS NOT NULL;

-- the waiting-job indexes lead with has_slot, so the planner picks them for the waiting counts (changed
-- in migration 7 after it had run: the old ones have a column fewer); made again only where they are old,
-- as building one reads the whole jobs table
DO $$
BEGIN
    IF (SELECT indnkeyatts FROM pg_index WHERE indexrelid = 'jobs_waiting'::regclass) = 3 THEN
        DROP INDEX jobs_waiting;
        CREATE INDEX jobs_waiting ON jobs (provider, has_slot, queue_round, created_at)
            WHERE has_slot = 0 AND status IN ('queued', 'processing');
    END IF;
    IF (SELECT indnkeyatts FROM pg_index WHERE indexrelid = 'jobs_waiting_by_key'::regclass) = 1 THEN
        DROP INDEX jobs_waiting_by_key;
        CREATE INDEX jobs_waiting_by_key ON jobs (key_id, has_slot) WHERE has_slot = 0 AND status IN ('queued', 'processing');
    END IF;
END $$;
