"""Benchmarks: the gateway measured against a bare sse-starlette app in the same run."""
