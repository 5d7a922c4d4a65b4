-- 0003: several replicas — job leases with fencing epochs, provider slots, webhook claims, shared
-- rate-limit windows and singleton locks

    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN has_slot INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_unfinished_by_provider ON jobs (provider, created_at)
        WHERE status IN ('queued', 'processing');
    -- the periodic look for undelivered webhooks reads only recent jobs that have a callback
    CREATE INDEX jobs_with_callback_by_completion ON jobs (completed_at) WHERE callback_url IS NOT NULL;
    ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;
    ALTER TABLE webhook_deliveries ADD COLUMN claim_until DOUBLE PRECISION NOT NULL DEFAULT 0;
    CREATE TABLE rate_windows (
        key_id TEXT NOT NULL,
        window_start BIGINT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (key_id, window_start)
    );
    CREATE TABLE singletons (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until DOUBLE PRECISION NOT NULL
    );
