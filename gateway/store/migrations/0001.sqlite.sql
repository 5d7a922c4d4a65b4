-- 0001: the first schema

    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        balance BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
        models TEXT,
        rate_limit_per_minute BIGINT,
        max_concurrent_jobs BIGINT,
        revoked_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        delta BIGINT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('debit', 'refund', 'credit', 'adjust')),
        job_id TEXT,
        balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
        note TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX ledger_by_key ON ledger (key_id, id);
    -- A job is debited at most once and refunded at most once: the schema says so, not only the code.
    CREATE UNIQUE INDEX ledger_one_debit_per_job ON ledger (job_id) WHERE reason = 'debit';
    CREATE UNIQUE INDEX ledger_one_refund_per_job ON ledger (job_id) WHERE reason = 'refund';
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        model TEXT NOT NULL,
        served_model TEXT NOT NULL,
        provider TEXT NOT NULL,
        prompt TEXT NOT NULL,
        effective_prompt TEXT NOT NULL,
        style TEXT,
        options TEXT NOT NULL,
        callback_url TEXT,
        status TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'canceled')),
        progress INTEGER,
        cost BIGINT NOT NULL,
        refunded INTEGER NOT NULL DEFAULT 0,
        url TEXT,
        urls TEXT,
        content_type TEXT,
        error TEXT,
        error_code TEXT,
        upstream_id TEXT,
        last_event_id INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        completed_at TEXT,
        expires_at TEXT,
        files_deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_key ON jobs (key_id, created_at DESC);
    CREATE INDEX jobs_unfinished ON jobs (status) WHERE status IN ('queued', 'processing');
    CREATE TABLE job_events (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        seq INTEGER NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE idempotency (
        key_id TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        body_hash TEXT NOT NULL,
        job_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (key_id, idem_key)
    );
    CREATE TABLE webhook_deliveries (
        job_id TEXT PRIMARY KEY REFERENCES jobs(id),
        url TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        delivered_at TEXT,
        last_error TEXT
    );
