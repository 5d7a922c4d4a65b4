"""The SDK package on its own: it imports nothing of the server, and `gateway.client` is another name for it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import gateway_client

PACKAGE = Path(gateway_client.__file__).parent


def test_the_sdk_imports_nothing_of_the_server() -> None:
    imported: set[str] = set()
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"gateway", "providers"}
    assert imported - {"gateway_client", "__future__"} <= {
        "anyio",
        "httpx",
        "httpx_sse",
        *sys.stdlib_module_names,
    }


def test_it_is_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_gateway_dot_client_is_the_old_name_of_the_sdk() -> None:
    import gateway.client

    assert gateway.client.__all__ == gateway_client.__all__
    for name in gateway_client.__all__:
        assert getattr(gateway.client, name) is getattr(gateway_client, name)
