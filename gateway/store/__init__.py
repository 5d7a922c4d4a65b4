"""The database: schema and migrations, keys, ledger, jobs, events, idempotency (one module each).

Routes and the runner reach the database only through these modules' named operations.
"""
