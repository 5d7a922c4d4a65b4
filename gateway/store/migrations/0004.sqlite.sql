-- 0004: at-most-once submits — when the driver was about to send the job to its upstream; with no
-- upstream id beside it after a crash, the upstream may hold the task or not

    ALTER TABLE jobs ADD COLUMN submit_intent_at TEXT;
