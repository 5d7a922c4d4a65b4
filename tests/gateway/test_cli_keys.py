"""`gateway keys` on the database: a key is created, listed, credited and revoked, and a key the HTTP API
would refuse is refused with the same sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    return tmp_path


def test_a_key_is_created_listed_credited_and_revoked(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "keys",
            "create",
            "--name",
            "  bot  ",
            "--tokens",
            "50",
            "--models",
            "suno,luma",
            "--rate-limit",
            "5",
        ]
    )
    created = json.loads(capsys.readouterr().out)
    assert created["key"].startswith("gw_") and created["name"] == "bot" and created["token_balance"] == 50
    assert created["models"] == ["suno", "luma"] and created["rate_limit_per_minute"] == 5
    main(["keys", "credit", created["id"], "25"])
    assert capsys.readouterr().out.strip() == f"{created['id']}: balance 75"
    main(["keys", "revoke", created["id"]])
    main(["keys", "list"])
    listed = capsys.readouterr().out
    assert created["id"] in listed and "revoked" in listed


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--name", ""], "`name` must be a non-empty string."),
        (["--name", "x" * 201], "`name` is 201 characters; the limit is 200."),
        (
            ["--name", "a", "--tokens", "-1"],
            "`tokens` must be an integer from 0 to 9007199254740991, or null.",
        ),
        (
            ["--name", "a", "--tokens", str(2**53)],
            "`tokens` must be an integer from 0 to 9007199254740991, or null.",
        ),
        (
            ["--name", "a", "--rate-limit", "0"],
            "`rate_limit_per_minute` must be an integer from 1 to 9007199254740991, or null.",
        ),
        (
            ["--name", "a", "--max-jobs", "0"],
            "`max_concurrent_jobs` must be an integer from 1 to 9007199254740991, or null.",
        ),
    ],
)
def test_a_key_the_http_api_would_refuse_is_refused_alike(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", "create", *arguments])
    assert exited.value.code == message
    main(["keys", "list"])
    assert capsys.readouterr().out == ""  # nothing was created
