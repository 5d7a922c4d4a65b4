-- 0015: the secrets every replica of a deployment signs with (download links, stream tokens, webhooks),
-- agreed through the database: a secret left unset is generated once here and read by every replica; a
-- secret set in a replica's environment is recorded by its digest alone, so that a replica set otherwise
-- refuses to start.
CREATE TABLE deployment_secrets (
    name TEXT PRIMARY KEY,
    value TEXT,
    digest TEXT NOT NULL,
    created_at TEXT NOT NULL
);
