"""Upstream provider adapters: one module per upstream wire protocol."""
