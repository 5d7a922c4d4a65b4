-- 0006: upstream accounts, the fair queue and settlement — the account a job runs on, its round in
-- its provider's queue, when it got a slot (durations for ETAs), the hold it was debited, and the
-- `settle` ledger row (at most one per job, as refunds)

    ALTER TABLE jobs ADD COLUMN account TEXT;
    ALTER TABLE jobs ADD COLUMN queue_round BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN started_at TEXT;
    ALTER TABLE jobs ADD COLUMN hold BIGINT;
    CREATE INDEX jobs_completed_by_model ON jobs (served_model, completed_at) WHERE status = 'completed';
    
    ALTER TABLE ledger DROP CONSTRAINT ledger_reason_check;
    ALTER TABLE ledger ADD CONSTRAINT ledger_reason_check
        CHECK (reason IN ('debit', 'refund', 'credit', 'adjust', 'settle'));

    CREATE UNIQUE INDEX ledger_one_settle_per_job ON ledger (job_id) WHERE reason = 'settle';
