"""`gateway --help` and every command's `--help` say what each option is for and, where it has one, its
default."""

from __future__ import annotations

import argparse

from gateway.cli import _parser


def commands(
    parser: argparse.ArgumentParser, path: str = "gateway"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, f"{path} {name}")
    return found


def test_every_command_and_option_is_explained_with_its_default() -> None:
    parser = _parser()
    listed = parser.format_help()
    for name in ("serve", "demo", "simulator", "doctor", "generate", "balance", "jobs", "cancel", "keys"):
        assert name in listed
    for path, command in commands(parser):
        for action in command._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{path} {action.dest}: no help"
            has_default = action.default not in (None, False, [], argparse.SUPPRESS) and not action.required
            if has_default:
                assert "(default:" in action.help, f"{path} {action.dest}: its default is not said"
