"""A job's life: create and debit, the runner (driver, leases), settlement, the queue's ETA."""
