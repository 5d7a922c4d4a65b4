-- 0012: on PostgreSQL, a day's usage of a key, model and provider counted in several rows, so that
-- its creates and its finishes do not wait for each other (see usage_schema.py)

    
    ALTER TABLE usage_daily ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0;
    ALTER TABLE usage_daily DROP CONSTRAINT usage_daily_pkey;
    ALTER TABLE usage_daily ADD PRIMARY KEY (day, key_id, model, provider, shard);
    CREATE OR REPLACE FUNCTION usage_from_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO usage_daily (day, key_id, model, provider, debited, refunded, settled)
        SELECT substr(NEW.created_at, 1, 10), NEW.key_id, j.model, j.provider,
            CASE WHEN NEW.reason = 'debit' THEN -NEW.delta ELSE 0 END,
            CASE WHEN NEW.reason = 'refund' THEN NEW.delta ELSE 0 END,
            CASE WHEN NEW.reason = 'settle' THEN NEW.delta ELSE 0 END
        FROM jobs j WHERE j.id = NEW.job_id
        ON CONFLICT (day, key_id, model, provider, shard) DO UPDATE SET
            debited = usage_daily.debited + excluded.debited,
            refunded = usage_daily.refunded + excluded.refunded,
            settled = usage_daily.settled + excluded.settled;
        RETURN NULL;
    END $$;
    CREATE OR REPLACE FUNCTION usage_from_finished_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO usage_daily (day, key_id, model, provider, completed, failed, canceled,
            completed_seconds, done_le_1, done_le_2, done_le_3, done_le_5, done_le_7, done_le_10, done_le_15, done_le_20, done_le_30, done_le_45, done_le_60, done_le_90, done_le_120, done_le_180, done_le_240, done_le_300, done_le_450, done_le_600, done_le_900, done_le_1200, done_le_1800, done_le_3600, done_le_inf, shard)
        SELECT substr(NEW.completed_at, 1, 10), NEW.key_id, NEW.model, NEW.provider,
            CASE WHEN NEW.status = 'completed' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'canceled' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' THEN (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 1 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 1 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 2 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 2 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 3 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 3 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 5 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 5 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 7 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 7 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 10 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 10 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 15 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 15 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 20 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 20 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 30 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 30 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 45 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 45 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 60 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 60 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 90 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 90 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 120 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 120 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 180 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 180 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 240 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 240 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 300 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 300 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 450 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 450 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 600 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 600 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 900 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 900 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 1200 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 1200 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 1800 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 1800 AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) <= 3600 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 3600 THEN 1 ELSE 0 END, 1 + pg_backend_pid() % 8
        WHERE NEW.completed_at IS NOT NULL
        ON CONFLICT (day, key_id, model, provider, shard) DO UPDATE SET
            completed = usage_daily.completed + excluded.completed,
            failed = usage_daily.failed + excluded.failed,
            canceled = usage_daily.canceled + excluded.canceled,
            completed_seconds = usage_daily.completed_seconds + excluded.completed_seconds,
            done_le_1 = usage_daily.done_le_1 + excluded.done_le_1,
            done_le_2 = usage_daily.done_le_2 + excluded.done_le_2,
            done_le_3 = usage_daily.done_le_3 + excluded.done_le_3,
            done_le_5 = usage_daily.done_le_5 + excluded.done_le_5,
            done_le_7 = usage_daily.done_le_7 + excluded.done_le_7,
            done_le_10 = usage_daily.done_le_10 + excluded.done_le_10,
            done_le_15 = usage_daily.done_le_15 + excluded.done_le_15,
            done_le_20 = usage_daily.done_le_20 + excluded.done_le_20,
            done_le_30 = usage_daily.done_le_30 + excluded.done_le_30,
            done_le_45 = usage_daily.done_le_45 + excluded.done_le_45,
            done_le_60 = usage_daily.done_le_60 + excluded.done_le_60,
            done_le_90 = usage_daily.done_le_90 + excluded.done_le_90,
            done_le_120 = usage_daily.done_le_120 + excluded.done_le_120,
            done_le_180 = usage_daily.done_le_180 + excluded.done_le_180,
            done_le_240 = usage_daily.done_le_240 + excluded.done_le_240,
            done_le_300 = usage_daily.done_le_300 + excluded.done_le_300,
            done_le_450 = usage_daily.done_le_450 + excluded.done_le_450,
            done_le_600 = usage_daily.done_le_600 + excluded.done_le_600,
            done_le_900 = usage_daily.done_le_900 + excluded.done_le_900,
            done_le_1200 = usage_daily.done_le_1200 + excluded.done_le_1200,
            done_le_1800 = usage_daily.done_le_1800 + excluded.done_le_1800,
            done_le_3600 = usage_daily.done_le_3600 + excluded.done_le_3600,
            done_le_inf = usage_daily.done_le_inf + excluded.done_le_inf;
        RETURN NULL;
    END $$;
