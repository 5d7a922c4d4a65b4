"""The gateway application: routes, billing, jobs and streams; no provider wire formats."""
