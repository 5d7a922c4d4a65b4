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
            CASE WHEN j.status = 'completed' THEN ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) ELSE 0 END
                AS completed_seconds,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 1 THEN 1 ELSE 0 END AS done_le_1,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 1 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 2 THEN 1 ELSE 0 END AS done_le_2,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 2 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 3 THEN 1 ELSE 0 END AS done_le_3,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 3 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 5 THEN 1 ELSE 0 END AS done_le_5,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 5 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 7 THEN 1 ELSE 0 END AS done_le_7,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 7 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 10 THEN 1 ELSE 0 END AS done_le_10,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 10 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 15 THEN 1 ELSE 0 END AS done_le_15,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 15 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 20 THEN 1 ELSE 0 END AS done_le_20,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 20 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 30 THEN 1 ELSE 0 END AS done_le_30,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 30 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 45 THEN 1 ELSE 0 END AS done_le_45,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 45 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 60 THEN 1 ELSE 0 END AS done_le_60,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 60 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 90 THEN 1 ELSE 0 END AS done_le_90,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 90 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 120 THEN 1 ELSE 0 END AS done_le_120,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 120 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 180 THEN 1 ELSE 0 END AS done_le_180,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 180 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 240 THEN 1 ELSE 0 END AS done_le_240,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 240 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 300 THEN 1 ELSE 0 END AS done_le_300,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 300 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 450 THEN 1 ELSE 0 END AS done_le_450,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 450 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 600 THEN 1 ELSE 0 END AS done_le_600,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 600 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 900 THEN 1 ELSE 0 END AS done_le_900,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 900 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 1200 THEN 1 ELSE 0 END AS done_le_1200,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 1200 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 1800 THEN 1 ELSE 0 END AS done_le_1800,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 1800 AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) <= 3600 THEN 1 ELSE 0 END AS done_le_3600,
            CASE WHEN j.status = 'completed' AND ROUND((julianday(j.completed_at) - julianday(j.created_at)) * 86400.0) > 3600 THEN 1 ELSE 0 END AS done_le_inf
        FROM jobs j WHERE j.status IN ('completed', 'failed', 'canceled') AND j.completed_at IS NOT NULL
    ) finished
    WHERE true
    GROUP BY day, key_id, model, provider
    ON CONFLICT (day, key_id, model, provider) DO UPDATE SET
        completed = excluded.completed, failed = excluded.failed, canceled = excluded.canceled,
        completed_seconds = excluded.completed_seconds,
        done_le_1 = excluded.done_le_1, done_le_2 = excluded.done_le_2, done_le_3 = excluded.done_le_3, done_le_5 = excluded.done_le_5, done_le_7 = excluded.done_le_7, done_le_10 = excluded.done_le_10, done_le_15 = excluded.done_le_15, done_le_20 = excluded.done_le_20, done_le_30 = excluded.done_le_30, done_le_45 = excluded.done_le_45, done_le_60 = excluded.done_le_60, done_le_90 = excluded.done_le_90, done_le_120 = excluded.done_le_120, done_le_180 = excluded.done_le_180, done_le_240 = excluded.done_le_240, done_le_300 = excluded.done_le_300, done_le_450 = excluded.done_le_450, done_le_600 = excluded.done_le_600, done_le_900 = excluded.done_le_900, done_le_1200 = excluded.done_le_1200, done_le_1800 = excluded.done_le_1800, done_le_3600 = excluded.done_le_3600, done_le_inf = excluded.done_le_inf;
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
    CREATE TRIGGER usage_from_finished_job AFTER UPDATE OF status ON jobs
    WHEN OLD.status IN ('queued', 'processing') AND NEW.status IN ('completed', 'failed', 'canceled')
    BEGIN
        INSERT INTO usage_daily (day, key_id, model, provider, completed, failed, canceled,
            completed_seconds, done_le_1, done_le_2, done_le_3, done_le_5, done_le_7, done_le_10, done_le_15, done_le_20, done_le_30, done_le_45, done_le_60, done_le_90, done_le_120, done_le_180, done_le_240, done_le_300, done_le_450, done_le_600, done_le_900, done_le_1200, done_le_1800, done_le_3600, done_le_inf)
        SELECT substr(NEW.completed_at, 1, 10), NEW.key_id, NEW.model, NEW.provider,
            CASE WHEN NEW.status = 'completed' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'canceled' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' THEN ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 1 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 1 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 2 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 2 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 3 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 3 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 5 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 5 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 7 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 7 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 10 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 10 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 15 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 15 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 20 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 20 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 30 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 30 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 45 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 45 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 60 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 60 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 90 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 90 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 120 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 120 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 180 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 180 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 240 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 240 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 300 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 300 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 450 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 450 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 600 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 600 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 900 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 900 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 1200 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 1200 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 1800 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 1800 AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) <= 3600 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' AND ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0) > 3600 THEN 1 ELSE 0 END
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
    END;
