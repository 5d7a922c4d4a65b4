"""Slots held, counted: jobs holding a provider slot per provider and account, and per key, kept by triggers.

Taking a slot, the per-key job caps and the queue's room all ask "how many jobs hold a slot". Counted
from the jobs table that costs a read of every such job, on every take and every create: with
thousands of streams open, most of the gateway's time. These two small tables answer it in one row
read. The triggers write them in the transaction that changes the job, whichever code (or replica,
or CLI) changed it, so they never drift from the jobs table; migration 7 made the tables and counted
what was there.

Jobs waiting for a slot are few by design (the per-key waiting cap) and are counted from the jobs
table through partial indexes (migration 7), as is a job's place in the queue.
"""

from __future__ import annotations

from typing import Literal

UNFINISHED = "('queued', 'processing')"


def _held(row: str) -> str:
    return f"{row}.has_slot = 1 AND {row}.status IN {UNFINISHED}"


# A change of status, slot or account that changes what the job holds (a status change between two
# unfinished states, as `queued` → `processing`, does not).
_CHANGES = (
    f"({_held('OLD')}) <> ({_held('NEW')})"
    f" OR ({_held('OLD')} AND {_held('NEW')} AND COALESCE(OLD.account, '') <> COALESCE(NEW.account, ''))"
)


def counts_locked_first(holders: str) -> tuple[str, str]:
    """PostgreSQL: the slot counts a write will change at commit (the trigger below), locked before
    anything else it locks, in the one order every statement keeps: the providers' counts, then the
    keys', by name (then the jobs, by id). `holders` is a query of the written jobs that hold a slot
    (provider, account as '' for none, key_id). Left to the commit, they were taken in the order the
    update met the jobs: a batch of finishes and a batch of takes, or a user's cancel and the batch
    finishing that job, could each hold a row the other waited for.

    Returns the CTEs (for a WITH; `holders`, `slot_counts`, `key_counts`), and the condition that
    makes the statement take them before it reads its own rows (a one-time filter: AND it to the
    first WHERE that locks)."""
    return (
        f"holders AS ({holders}),"
        " slot_counts AS (SELECT 1 FROM slots_held h JOIN (SELECT DISTINCT provider, account FROM holders) o"
        " ON h.provider = o.provider AND h.account = o.account"
        ' ORDER BY h.provider COLLATE "C", h.account COLLATE "C" FOR NO KEY UPDATE OF h),'
        " key_counts AS (SELECT 1 FROM slots_held_by_key k WHERE k.key_id IN (SELECT key_id FROM holders)"
        ' ORDER BY k.key_id COLLATE "C" FOR NO KEY UPDATE OF k)',
        "(SELECT count(*) FROM slot_counts) + (SELECT count(*) FROM key_counts) >= 0",
    )


# Each statement carries its own condition (SQLite has no IF in a trigger): the slot the job held is
# given back, the one it holds now is taken.
_BODY = f"""
        UPDATE slots_held SET n = n - 1
            WHERE provider = OLD.provider AND account = COALESCE(OLD.account, '') AND {_held("OLD")};
        UPDATE slots_held_by_key SET n = n - 1 WHERE key_id = OLD.key_id AND {_held("OLD")};
        INSERT INTO slots_held (provider, account, n)
            SELECT NEW.provider, COALESCE(NEW.account, ''), 1 WHERE {_held("NEW")}
            ON CONFLICT (provider, account) DO UPDATE SET n = slots_held.n + 1;
        INSERT INTO slots_held_by_key (key_id, n) SELECT NEW.key_id, 1 WHERE {_held("NEW")}
            ON CONFLICT (key_id) DO UPDATE SET n = slots_held_by_key.n + 1;"""


# PostgreSQL's trigger function. The start-up's repeatable step (schema.py) makes it, and the trigger
# below, again from here; the tables, their back-fill and the waiting jobs' indexes were made once, by
# migration 7.
FUNCTION = f"""
    CREATE OR REPLACE FUNCTION slots_held_kept() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN{_BODY}
        RETURN NULL;
    END $$;"""


def trigger(dialect: Literal["sqlite", "postgresql"]) -> str:
    """The trigger that keeps the counts, as it stands."""
    if dialect == "sqlite":
        return f"""CREATE TRIGGER slots_held_kept AFTER UPDATE OF status, has_slot, account ON jobs
    WHEN {_CHANGES}
    BEGIN{_BODY}
    END;"""
    # PostgreSQL: deferred to the commit, like the usage roll-up's job trigger. The counts' rows are
    # shared by every job of a provider: taken at commit, they are held for the commit alone (not for
    # the transaction's round trips), and after every other row the transaction locks (no deadlock).
    return f"""CREATE CONSTRAINT TRIGGER slots_held_kept AFTER UPDATE OF status, has_slot, account ON jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({_CHANGES})
    EXECUTE FUNCTION slots_held_kept();"""


# A new job's round in its provider's queue: one past its key's last unfinished job there, and never
# behind the head of the queue (so a key that was idle joins the current round, not an old one).
# `{key}` and `{provider}` are the expressions that give them. Each is the first row of an index in
# order (jobs_unfinished_rounds, jobs_waiting), written as ORDER BY … LIMIT 1 rather than MAX and MIN:
# PostgreSQL plans a function's statements once per session, and a plan made while `jobs` was empty
# (a fresh database) read MAX by scanning every unfinished job of the provider instead.
NEXT_ROUND = (
    "(SELECT CASE WHEN mine > head THEN mine ELSE head END FROM (SELECT"
    " COALESCE((SELECT queue_round + 1 FROM jobs WHERE key_id = {key} AND provider = {provider}"
    f" AND status IN {UNFINISHED} ORDER BY queue_round DESC LIMIT 1), 0) AS mine,"
    " COALESCE((SELECT queue_round FROM jobs WHERE provider = {provider} AND has_slot = 0"
    f" AND status IN {UNFINISHED} ORDER BY queue_round LIMIT 1), 0) AS head) AS rounds)"
)
