"""Where webhook receivers import `verify_signature` from (the README's path); the deliveries themselves
live in gateway.results.webhooks."""

from __future__ import annotations

from gateway.results.webhooks import verify_signature

__all__ = ["verify_signature"]
