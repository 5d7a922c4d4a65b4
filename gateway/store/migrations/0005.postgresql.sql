-- 0005: operators' reports — the daily usage roll-up (see usage_schema.py) and job lists across
-- keys, newest first, by status or provider

    CREATE INDEX jobs_by_creation ON jobs (created_at);
    CREATE INDEX jobs_by_status ON jobs (status, provider, created_at);
    CREATE INDEX jobs_by_provider ON jobs (provider, created_at);
    
    CREATE TABLE usage_daily (
        day TEXT NOT NULL,
        key_id TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        debited BIGINT NOT NULL DEFAULT 0,
        refunded BIGINT NOT NULL DEFAULT 0,
        settled BIGINT NOT NULL DEFAULT 0,
        completed BIGINT NOT NULL DEFAULT 0,
        failed BIGINT NOT NULL DEFAULT 0,
        canceled BIGINT NOT NULL DEFAULT 0,
        completed_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
        done_le_1 BIGINT NOT NULL DEFAULT 0,
        done_le_2 BIGINT NOT NULL DEFAULT 0,
        done_le_3 BIGINT NOT NULL DEFAULT 0,
        done_le_5 BIGINT NOT NULL DEFAULT 0,
        done_le_7 BIGINT NOT NULL DEFAULT 0,
        done_le_10 BIGINT NOT NULL DEFAULT 0,
        done_le_15 BIGINT NOT NULL DEFAULT 0,
        done_le_20 BIGINT NOT NULL DEFAULT 0,
        done_le_30 BIGINT NOT NULL DEFAULT 0,
        done_le_45 BIGINT NOT NULL DEFAULT 0,
        done_le_60 BIGINT NOT NULL DEFAULT 0,
        done_le_90 BIGINT NOT NULL DEFAULT 0,
        done_le_120 BIGINT NOT NULL DEFAULT 0,
        done_le_180 BIGINT NOT NULL DEFAULT 0,
        done_le_240 BIGINT NOT NULL DEFAULT 0,
        done_le_300 BIGINT NOT NULL DEFAULT 0,
        done_le_450 BIGINT NOT NULL DEFAULT 0,
        done_le_600 BIGINT NOT NULL DEFAULT 0,
        done_le_900 BIGINT NOT NULL DEFAULT 0,
        done_le_1200 BIGINT NOT NULL DEFAULT 0,
        done_le_1800 BIGINT NOT NULL DEFAULT 0,
        done_le_3600 BIGINT NOT NULL DEFAULT 0,
        done_le_inf BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (day, key_id, model, provider)
    );
    
    INSERT INTO usage_daily (day, key_id, model, provider, debited, refunded, settled)
    SELECT substr(l.created_at, 1, 10), l.key_id, j.model, j.provider,
        SUM(CASE WHEN l.reason = 'debit' THEN -l.delta ELSE 0 END),
        SUM(CASE WHEN l.reason = 'refund' THEN l.delta ELSE 0 END),
        SUM(CASE WHEN l.reason = 'settle' THEN l.delta ELSE 0 END)
    FROM ledger l JOIN jobs j ON j.id = l.job_id
    WHERE l.reason IN ('debit', 'refund', 'settle')
    GROUP BY 1, 2, 3, 4;
    INSERT INTO usage_daily (day, key_id, model, provider, completed, failed, canceled,
        completed_seconds, done_le_1, done_le_2, done_le_3, done_le_5, done_le_7, done_le_10, done_le_15, done_le_20, done_le_30, done_le_45, done_le_60, done_le_90, done_le_120, done_le_180, done_le_240, done_le_300, done_le_450, done_le_600, done_le_900, done_le_1200, done_le_1800, done_le_3600, done_le_inf)
    SELECT day, key_id, model, provider, SUM(completed), SUM(failed), SUM(canceled),
        SUM(completed_seconds), SUM(done_le_1), SUM(done_le_2), SUM(done_le_3), SUM(done_le_5), SUM(done_le_7), SUM(done_le_10), SUM(done_le_15), SUM(done_le_20), SUM(done_le_30), SUM(done_le_45), SUM(done_le_60), SUM(done_le_90), SUM(done_le_120), SUM(done_le_180), SUM(done_le_240), SUM(done_le_300), SUM(done_le_450), SUM(done_le_600), SUM(done_le_900), SUM(done_le_1200), SUM(done_le_1800), SUM(done_le_3600), SUM(done_le_inf)
    FROM (SELECT substr(j.completed_at, 1, 10) AS day, j.key_id, j.model, j.provider,
            CASE WHEN j.status = 'completed' THEN 1 ELSE 0 END AS completed,
            CASE WHEN j.status = 'failed' THEN 1 ELSE 0 END AS failed,
            CASE WHEN j.status = 'canceled' THEN 1 ELSE 0 END AS canceled,
            CASE WHEN j.status = 'completed' THEN (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) ELSE 0 END
                AS completed_seconds,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 1 THEN 1 ELSE 0 END AS done_le_1,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 1 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 2 THEN 1 ELSE 0 END AS done_le_2,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 2 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 3 THEN 1 ELSE 0 END AS done_le_3,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 3 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 5 THEN 1 ELSE 0 END AS done_le_5,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 5 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 7 THEN 1 ELSE 0 END AS done_le_7,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 7 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 10 THEN 1 ELSE 0 END AS done_le_10,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 10 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 15 THEN 1 ELSE 0 END AS done_le_15,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 15 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 20 THEN 1 ELSE 0 END AS done_le_20,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 20 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 30 THEN 1 ELSE 0 END AS done_le_30,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 30 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 45 THEN 1 ELSE 0 END AS done_le_45,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 45 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 60 THEN 1 ELSE 0 END AS done_le_60,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 60 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 90 THEN 1 ELSE 0 END AS done_le_90,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 90 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 120 THEN 1 ELSE 0 END AS done_le_120,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 120 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 180 THEN 1 ELSE 0 END AS done_le_180,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 180 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 240 THEN 1 ELSE 0 END AS done_le_240,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 240 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 300 THEN 1 ELSE 0 END AS done_le_300,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 300 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 450 THEN 1 ELSE 0 END AS done_le_450,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 450 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 600 THEN 1 ELSE 0 END AS done_le_600,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 600 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 900 THEN 1 ELSE 0 END AS done_le_900,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 900 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 1200 THEN 1 ELSE 0 END AS done_le_1200,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 1200 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 1800 THEN 1 ELSE 0 END AS done_le_1800,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 1800 AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) <= 3600 THEN 1 ELSE 0 END AS done_le_3600,
            CASE WHEN j.status = 'completed' AND (EXTRACT(EPOCH FROM j.completed_at::timestamptz - j.created_at::timestamptz)) > 3600 THEN 1 ELSE 0 END AS done_le_inf
        FROM jobs j WHERE j.status IN ('completed', 'failed', 'canceled') AND j.completed_at IS NOT NULL
    ) finished
    WHERE true
    GROUP BY day, key_id, model, provider
    ON CONFLICT (day, key_id, model, provider) DO UPDATE SET
        completed = excluded.completed, failed = excluded.failed, canceled = excluded.canceled,
        completed_seconds = excluded.completed_seconds,
        done_le_1 = excluded.done_le_1, done_le_2 = excluded.done_le_2, done_le_3 = excluded.done_le_3, done_le_5 = excluded.done_le_5, done_le_7 = excluded.done_le_7, done_le_10 = excluded.done_le_10, done_le_15 = excluded.done_le_15, done_le_20 = excluded.done_le_20, done_le_30 = excluded.done_le_30, done_le_45 = excluded.done_le_45, done_le_60 = excluded.done_le_60, done_le_90 = excluded.done_le_90, done_le_120 = excluded.done_le_120, done_le_180 = excluded.done_le_180, done_le_240 = excluded.done_le_240, done_le_300 = excluded.done_le_300, done_le_450 = excluded.done_le_450, done_le_600 = excluded.done_le_600, done_le_900 = excluded.done_le_900, done_le_1200 = excluded.done_le_1200, done_le_1800 = excluded.done_le_1800, done_le_3600 = excluded.done_le_3600, done_le_inf = excluded.done_le_inf;
    CREATE FUNCTION usage_from_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
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
        RETURN NULL;
    END $$;
    CREATE TRIGGER usage_from_ledger AFTER INSERT ON ledger FOR EACH ROW
    WHEN (NEW.reason IN ('debit', 'refund', 'settle') AND NEW.job_id IS NOT NULL)
    EXECUTE FUNCTION usage_from_ledger();
    CREATE FUNCTION usage_from_finished_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO usage_daily (day, key_id, model, provider, completed, failed, canceled,
            completed_seconds, done_le_1, done_le_2, done_le_3, done_le_5, done_le_7, done_le_10, done_le_15, done_le_20, done_le_30, done_le_45, done_le_60, done_le_90, done_le_120, done_le_180, done_le_240, done_le_300, done_le_450, done_le_600, done_le_900, done_le_1200, done_le_1800, done_le_3600, done_le_inf)
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
            CASE WHEN NEW.status = 'completed' AND (EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz)) > 3600 THEN 1 ELSE 0 END
        WHERE NEW.completed_at IS NOT NULL
        ON CONFLICT (day, key_id, model, provider) DO UPDATE SET
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
    CREATE CONSTRAINT TRIGGER usage_from_finished_job AFTER UPDATE OF status ON jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.status IN ('queued', 'processing') AND NEW.status IN ('completed', 'failed', 'canceled'))
    EXECUTE FUNCTION usage_from_finished_job();
