"""Per-key limits: request rates (in memory, Redis or the database) and the key cache."""
