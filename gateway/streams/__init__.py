"""Job events: the bus (in-process or Redis), their SSE streams, open-stream caps, resume."""
