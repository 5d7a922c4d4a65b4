"""The Python SDK under its old name: `gateway.client` re-exports `gateway_client` (clients/python/)."""

from __future__ import annotations

from gateway_client import *  # noqa: F403  (every public name of the SDK, as its __all__ lists them)
from gateway_client import __all__ as __all__
