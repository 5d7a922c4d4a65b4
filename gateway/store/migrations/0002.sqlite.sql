-- 0002: the per-key concurrent-job check counts unfinished jobs without scanning the key's history

    CREATE INDEX jobs_unfinished_by_key ON jobs (key_id) WHERE status IN ('queued', 'processing');
