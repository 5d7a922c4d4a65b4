"""Thin request handlers, one module per area."""
