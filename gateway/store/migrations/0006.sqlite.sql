-- 0006: upstream accounts, the fair queue and settlement — the account a job runs on, its round in
-- its provider's queue, when it got a slot (durations for ETAs), the hold it was debited, and the
-- `settle` ledger row (at most one per job, as refunds)

    ALTER TABLE jobs ADD COLUMN account TEXT;
    ALTER TABLE jobs ADD COLUMN queue_round BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN started_at TEXT;
    ALTER TABLE jobs ADD COLUMN hold BIGINT;
    CREATE INDEX jobs_completed_by_model ON jobs (served_model, completed_at) WHERE status = 'completed';
    
    CREATE TABLE ledger_settle (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        delta BIGINT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('debit', 'refund', 'credit', 'adjust', 'settle')),
        job_id TEXT,
        balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
        note TEXT,
        created_at TEXT NOT NULL
    );
    INSERT INTO ledger_settle SELECT id, key_id, delta, reason, job_id, balance_after, note, created_at
        FROM ledger;
    DROP TABLE ledger;
    ALTER TABLE ledger_settle RENAME TO ledger;
    CREATE INDEX ledger_by_key ON ledger (key_id, id);
    CREATE UNIQUE INDEX ledger_one_debit_per_job ON ledger (job_id) WHERE reason = 'debit';
    CREATE UNIQUE INDEX ledger_one_refund_per_job ON ledger (job_id) WHERE reason = 'refund';
    CREATE TRIGGER usage_from_ledger AFTER INSERT ON ledger
    WHEN NEW.reason IN ('debit', 'refund', 'settle') AND NEW.job_id IS NOT NULL
    BEGIN
        INSERT INTO usage_daily (day, key_id, model, provider, debited, refunded, settled)
        SELECT substr(NEW.created_at, 1, 10), NEW.key_id, j.model, j.provider,
            CASE WHEN NEW.reason = 'debit' THEN -NEW.delta ELSE 0 END,
            CASE WHEN NEW.reason = 'refund' THEN NEW.delta ELSE 0 END,
            CASE WHEN NEW.reason = 'settle' THEN NEW.delta ELSE 0 END
        FROM jobs j WHERE j.id = NEW.job_id
        ON CONFLICT (day, key_id, model, provider) DO UPDATE SET
            debited = usage_daily.debited + excluded.debited,
            refunded = usage_daily.refunded + excluded.refunded,
            settled = usage_daily.settled + excluded.settled;
    END;

    CREATE UNIQUE INDEX ledger_one_settle_per_job ON ledger (job_id) WHERE reason = 'settle';
