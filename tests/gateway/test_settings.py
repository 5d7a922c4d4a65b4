"""Settings from the environment read as they would from config.toml."""

from __future__ import annotations

import pytest

from gateway.settings import Settings


def test_extra_booleans_from_the_environment_are_booleans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PROVIDERS__LOCAL__EXTRA__WEBSOCKET", "false")
    monkeypatch.setenv("GATEWAY_PROVIDERS__LOCAL__EXTRA__SEED_NODE", "3")
    extra = Settings().providers["local"].extra
    assert extra["websocket"] is False  # the string "false" was truthy
    assert extra["seed_node"] == "3"  # node ids stay strings


def test_cors_origins_and_database_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CORS_ORIGINS", '["https://app.example"]')
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql://gw@db:5432/gw")
    settings = Settings()
    assert settings.cors_origins == ["https://app.example"]
    assert settings.shared_database
    assert not Settings(database_url=None).shared_database
