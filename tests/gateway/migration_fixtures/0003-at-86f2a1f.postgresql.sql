-- Migration 3 as main had it at 86f2a1f, before f07cf9a added jobs_with_callback_by_completion to it.

    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN has_slot INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX jobs_unfinished_by_provider ON jobs (provider, created_at)
        WHERE status IN ('queued', 'processing');
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
