"""`gateway doctor`: every configured provider checked against its upstream, shown as one table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import anyio
import httpx
from rich.console import Console
from rich.table import Table

from gateway.settings import Settings
from providers.doctor import PROBES, Finding, Status, ok, problem, skipped

MARKS = {Status.OK: "[green]ok[/]", Status.PROBLEM: "[bold red]PROBLEM[/]", Status.SKIPPED: "[dim]–[/]"}


@dataclass
class Examination:
    """One provider's findings, in the order they were checked."""

    provider: str
    findings: list[Finding] = field(default_factory=list)
    configured: bool = True

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.PROBLEM]


def credential(settings: Settings, name: str, named: bool) -> Examination:
    """What the environment holds for the provider: its required variables and its credential."""
    config = settings.providers[name]
    if config.accounts:
        return account_credentials(settings, name, named)
    exam = Examination(name)
    unset = [var for var in config.requires if not os.environ.get(var)]
    if unset and not settings.demo:
        listed = ", ".join(unset)
        if named or len(unset) < len(config.requires):
            exam.findings.append(problem("credential", f"{listed} not set"))
        else:  # nothing of it is set: the operator does not use it, and the gateway leaves it out too
            exam.configured = False
            exam.findings.append(skipped("credential", f"not configured (set {listed} to use it)"))
        return exam
    env = config.credential_env
    if env is None:
        exam.findings.append(skipped("credential", "none needed"))
    elif os.environ.get(env):
        exam.findings.append(ok("credential", f"{env} is set"))
    elif settings.demo:
        exam.findings.append(ok("credential", f"{env} unset: the simulator's stand-in key"))
    else:
        exam.findings.append(ok("credential", f"{env} unset (optional)"))
    return exam


def account_credentials(settings: Settings, name: str, named: bool) -> Examination:
    """A provider with upstream accounts: each account's credential variable, one finding each."""
    exam = Examination(name)
    if not settings.provider_configured(name):
        exam.configured = named
        wanted = ", ".join(a.credential_env or a.name for a in settings.providers[name].accounts)
        finding = problem if named else skipped
        exam.findings.append(finding("credential", f"no account has its credential (set one of {wanted})"))
        return exam
    for account in settings.providers[name].accounts:
        check = f"credential ({account.name})"
        if settings.account_configured(name, account):
            exam.findings.append(ok(check, f"{account.credential_env or 'no variable'}: set or not needed"))
        else:
            exam.findings.append(skipped(check, f"{account.credential_env} not set: the account is left out"))
    return exam


async def examine_one(settings: Settings, exam: Examination, wait_seconds: float) -> None:
    """Runs the provider's probe (once per upstream account), with a client of its own, after the
    credential check passed."""
    config = settings.providers[exam.provider]
    probe = PROBES.get(config.adapter)
    if probe is None:
        exam.findings.append(skipped("reachable", f"no check for the adapter {config.adapter}"))
        return
    params = [model.upstream for model in settings.models.values() if model.provider == exam.provider]
    client_timeout = httpx.Timeout(wait_seconds, connect=min(wait_seconds, 10.0))
    for account in config.account_list():
        if not settings.account_configured(exam.provider, account):
            continue
        provider = settings.provider_settings(exam.provider, account=account)
        async with httpx.AsyncClient(base_url=provider.base_url.rstrip("/"), timeout=client_timeout) as http:
            findings = await probe(http, provider, params)
        if config.accounts:  # one row per account: which one is refused is the point
            findings = [replace(f, check=f"{f.check} ({account.name})") for f in findings]
        exam.findings.extend(findings)


async def examine(
    settings: Settings, names: Sequence[str] = (), wait_seconds: float = 10.0
) -> list[Examination]:
    """Each named provider (every one in config when none is named), checked concurrently."""
    exams = [credential(settings, name, bool(names)) for name in names or list(settings.providers)]
    async with anyio.create_task_group() as tg:
        for exam in exams:
            if exam.configured and not exam.problems:
                tg.start_soon(examine_one, settings, exam, wait_seconds)
    return exams


def table(exams: Sequence[Examination]) -> Table:
    grid = Table(title="gateway doctor", title_justify="left")
    for column in ("provider", "check", "result", "detail"):
        grid.add_column(column, overflow="fold")
    for exam in exams:
        last = len(exam.findings) - 1
        for index, finding in enumerate(exam.findings):
            grid.add_row(
                exam.provider if index == 0 else "",
                finding.check,
                MARKS[finding.status],
                finding.detail,
                end_section=index == last,
            )
    return grid


def summary(exams: Sequence[Examination]) -> tuple[str, int]:
    """The closing line and the exit code: 1 when anything checked has a problem or nothing was checked."""
    broken = [exam.provider for exam in exams if exam.problems]
    checked = [exam.provider for exam in exams if exam.configured]
    if broken:
        count = sum(len(exam.problems) for exam in exams)
        return f"[bold red]{count} problem{'s' if count > 1 else ''}[/]: {', '.join(broken)}", 1
    if not checked:
        return "[bold red]no provider is configured[/]: set the variables shown above", 1
    return f"[green]all {len(checked)} configured providers answer as they should[/]", 0


async def run(settings: Settings, names: Sequence[str], console: Console, wait_seconds: float = 10.0) -> int:
    """Checks, prints the table and the summary, and returns the exit code."""
    exams = await examine(settings, names, wait_seconds)
    console.print(table(exams))
    line, code = summary(exams)
    console.print(line)
    return code
