"""The daily usage roll-up: one row per day, key, model and provider, kept by triggers on both engines.

A usage report over a month reads at most a few thousand of these rows instead of every ledger row
and job of the month. The triggers write it in the transaction that writes the ledger row or
finishes the job, so it never drifts from them, whichever code (or replica, or CLI) wrote those.
"""

from __future__ import annotations

from typing import Literal

# Upper bounds (seconds) of the completed jobs' duration buckets; the last bucket has none. The
# 95th percentile is estimated from them as Prometheus's histogram_quantile does.
DURATION_BOUNDS = (
    1,
    2,
    3,
    5,
    7,
    10,
    15,
    20,
    30,
    45,
    60,
    90,
    120,
    180,
    240,
    300,
    450,
    600,
    900,
    1200,
    1800,
    3600,
)
BUCKET_COLUMNS = (*(f"done_le_{b}" for b in DURATION_BOUNDS), "done_le_inf")

_LEDGER_TRIGGER_BODY = """
        INSERT INTO usage_daily (day, key_id, model, provider, debited, refunded, settled)
        SELECT substr(NEW.created_at, 1, 10), NEW.key_id, j.model, j.provider,
            CASE WHEN NEW.reason = 'debit' THEN -NEW.delta ELSE 0 END,
            CASE WHEN NEW.reason = 'refund' THEN NEW.delta ELSE 0 END,
            CASE WHEN NEW.reason = 'settle' THEN NEW.delta ELSE 0 END
        FROM jobs j WHERE j.id = NEW.job_id
        ON CONFLICT (day, key_id, model, provider{shard}) DO UPDATE SET
            debited = usage_daily.debited + excluded.debited,
            refunded = usage_daily.refunded + excluded.refunded,
            settled = usage_daily.settled + excluded.settled;"""

# On PostgreSQL a day's key, model and provider have several roll-up rows (migration 12), which the
# reports add up: the ledger's rows count in shard 0, a finish in the shard of the connection that
# writes it. Every create and every finish of a key had counted in one row, so each waited for the
# other's commit (a create batch holds its row until it commits): 1.75 ms a finish, 5 000 creates of
# instant jobs (pg_stat_user_functions).
FINISH_SHARDS = 8
_FINISH_SHARD = f"1 + pg_backend_pid() % {FINISH_SHARDS}"


def _bucket_cases(duration: str) -> str:
    cases = []
    lower: int | None = None
    for bound in (*DURATION_BOUNDS, None):
        conditions = [f"{duration} > {lower}"] if lower is not None else []
        if bound is not None:
            conditions.append(f"{duration} <= {bound}")
        test = " AND ".join(["NEW.status = 'completed'", *conditions])
        cases.append(f"CASE WHEN {test} THEN 1 ELSE 0 END")
        lower = bound
    return ",\n            ".join(cases)


def _job_trigger_body(duration: str, shard: str | None = None) -> str:
    """The finished-job trigger's statement; with `shard`, the row of that shard (PostgreSQL)."""
    buckets = ", ".join(BUCKET_COLUMNS)
    updates = ",\n            ".join(f"{c} = usage_daily.{c} + excluded.{c}" for c in BUCKET_COLUMNS)
    return f"""
        INSERT INTO usage_daily (day, key_id, model, provider, completed, failed, canceled,
            completed_seconds, {buckets}{", shard" if shard else ""})
        SELECT substr(NEW.completed_at, 1, 10), NEW.key_id, NEW.model, NEW.provider,
            CASE WHEN NEW.status = 'completed' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'failed' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'canceled' THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'completed' THEN {duration} ELSE 0 END,
            {_bucket_cases(duration)}{f", {shard}" if shard else ""}
        WHERE NEW.completed_at IS NOT NULL
        ON CONFLICT (day, key_id, model, provider{", shard" if shard else ""}) DO UPDATE SET
            completed = usage_daily.completed + excluded.completed,
            failed = usage_daily.failed + excluded.failed,
            canceled = usage_daily.canceled + excluded.canceled,
            completed_seconds = usage_daily.completed_seconds + excluded.completed_seconds,
            {updates};"""


def backfill(dialect: Literal["sqlite", "postgresql"]) -> list[str]:
    """What the triggers would have written for the rows that were there before them: two statements."""
    # PostgreSQL's rows have a shard now (migration 12): the back-fill's is 0
    script = _backfill(SQLITE_DURATION) if dialect == "sqlite" else _backfill(POSTGRES_DURATION, ", shard")
    return script.strip().rstrip(";").split(";\n")


def _backfill(duration: str, shard: str = "") -> str:
    sums = ", ".join(f"SUM({c})" for c in BUCKET_COLUMNS)
    bucket_values = _bucket_cases(duration).replace("NEW.", "j.")
    return f"""
    INSERT INTO usage_daily (day, key_id, model, provider, debited, refunded, settled)
    SELECT substr(l.created_at, 1, 10), l.key_id, j.model, j.provider,
        SUM(CASE WHEN l.reason = 'debit' THEN -l.delta ELSE 0 END),
        SUM(CASE WHEN l.reason = 'refund' THEN l.delta ELSE 0 END),
        SUM(CASE WHEN l.reason = 'settle' THEN l.delta ELSE 0 END)
    FROM ledger l JOIN jobs j ON j.id = l.job_id
    WHERE l.reason IN ('debit', 'refund', 'settle')
    GROUP BY 1, 2, 3, 4;
    INSERT INTO usage_daily (day, key_id, model, provider, completed, failed, canceled,
        completed_seconds, {", ".join(BUCKET_COLUMNS)})
    SELECT day, key_id, model, provider, SUM(completed), SUM(failed), SUM(canceled),
        SUM(completed_seconds), {sums}
    FROM (SELECT substr(j.completed_at, 1, 10) AS day, j.key_id, j.model, j.provider,
            CASE WHEN j.status = 'completed' THEN 1 ELSE 0 END AS completed,
            CASE WHEN j.status = 'failed' THEN 1 ELSE 0 END AS failed,
            CASE WHEN j.status = 'canceled' THEN 1 ELSE 0 END AS canceled,
            CASE WHEN j.status = 'completed' THEN {duration.replace("NEW.", "j.")} ELSE 0 END
                AS completed_seconds,
            {_aliased(bucket_values)}
        FROM jobs j WHERE j.status IN ('completed', 'failed', 'canceled') AND j.completed_at IS NOT NULL
    ) finished
    WHERE true
    GROUP BY day, key_id, model, provider
    ON CONFLICT (day, key_id, model, provider{shard}) DO UPDATE SET
        completed = excluded.completed, failed = excluded.failed, canceled = excluded.canceled,
        completed_seconds = excluded.completed_seconds,
        {", ".join(f"{c} = excluded.{c}" for c in BUCKET_COLUMNS)};"""


def _aliased(cases: str) -> str:
    parts = cases.split(",\n            ")
    return ",\n            ".join(
        f"{part} AS {column}" for part, column in zip(parts, BUCKET_COLUMNS, strict=True)
    )


# Times are stored to the second: rounding takes julianday()'s floating-point noise off bucket bounds.
SQLITE_DURATION = "ROUND((julianday(NEW.completed_at) - julianday(NEW.created_at)) * 86400.0)"
POSTGRES_DURATION = "(EXTRACT(EPOCH FROM NEW.completed_at::timestamptz - NEW.created_at::timestamptz))"


# The start-up's repeatable step (schema.py) makes the triggers, and PostgreSQL's trigger functions,
# again from here; the table and its first back-fill were made once, by migration 5 (its shards on
# PostgreSQL by migration 12).


def ledger_trigger(dialect: Literal["sqlite", "postgresql"]) -> str:
    """The trigger that rolls ledger rows up, as it stands. A migration that rebuilds the ledger table
    drops it; the start-up after it makes it again."""
    if dialect == "sqlite":
        return f"""CREATE TRIGGER usage_from_ledger AFTER INSERT ON ledger
    WHEN NEW.reason IN ('debit', 'refund', 'settle') AND NEW.job_id IS NOT NULL
    BEGIN{_LEDGER_TRIGGER_BODY.format(shard="")}
    END;"""
    return """CREATE TRIGGER usage_from_ledger AFTER INSERT ON ledger FOR EACH ROW
    WHEN (NEW.reason IN ('debit', 'refund', 'settle') AND NEW.job_id IS NOT NULL)
    EXECUTE FUNCTION usage_from_ledger();"""


def finished_job_trigger(dialect: Literal["sqlite", "postgresql"]) -> str:
    """The trigger that rolls finished jobs up, as it stands."""
    if dialect == "sqlite":
        return f"""CREATE TRIGGER usage_from_finished_job AFTER UPDATE OF status ON jobs
    WHEN OLD.status IN ('queued', 'processing') AND NEW.status IN ('completed', 'failed', 'canceled')
    BEGIN{_job_trigger_body(SQLITE_DURATION)}
    END;"""
    # PostgreSQL: deferred to the commit. A finish locks the job, then the key (its refund); a create
    # locks the key (its debit), then the roll-up row (the ledger trigger). Taking the roll-up row at
    # commit keeps both in that order: key before roll-up, no deadlock.
    return """CREATE CONSTRAINT TRIGGER usage_from_finished_job AFTER UPDATE OF status ON jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.status IN ('queued', 'processing') AND NEW.status IN ('completed', 'failed', 'canceled'))
    EXECUTE FUNCTION usage_from_finished_job();"""


# PostgreSQL's trigger functions; the ledger's rows count in shard 0, a finish in its connection's.
FUNCTIONS = f"""
    CREATE OR REPLACE FUNCTION usage_from_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN{_LEDGER_TRIGGER_BODY.format(shard=", shard")}
        RETURN NULL;
    END $$;
    CREATE OR REPLACE FUNCTION usage_from_finished_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN{_job_trigger_body(POSTGRES_DURATION, _FINISH_SHARD)}
        RETURN NULL;
    END $$;"""
