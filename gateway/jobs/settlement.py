"""Prices settled to what was produced: the hold debited at submit, and the price the output earns."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from gateway.settings import ModelConfig, Pricing, Settings
from gateway.store.job_records import Job, Settlement


def seconds(value: Any) -> float:
    """An option's amount as a number: 5, 5.0 and "5s" are all 5."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = re.match(r"\s*(\d+(?:\.\d+)?)", str(value))
    return float(match.group(1)) if match else 0.0


def priced(pricing: Pricing, amount: float) -> int:
    """`base + per_second × (amount − base_seconds)`, never below the base."""
    return round(pricing.base + pricing.per_second * max(0.0, amount - pricing.base_seconds))


def price(config: ModelConfig, options: Mapping[str, Any]) -> int:
    """The price of a request: the flat cost, or the formula over the option the request gives."""
    pricing = config.pricing
    if pricing is None:
        return config.cost
    return priced(pricing, seconds(options.get(pricing.option, pricing.base_seconds)))


def hold(config: ModelConfig, options: Mapping[str, Any], reported: Collection[str]) -> int | None:
    """The most the request can cost, when its price settles at completion: the model's formula runs
    over an option the upstream reports what it produced of, and that option has a declared maximum.
    None when the price is fixed at submit."""
    pricing = config.pricing
    if pricing is None or pricing.option not in reported:
        return None
    spec = config.options.get(pricing.option)
    if spec is None:
        return None
    if spec.choices:
        most = max(seconds(choice) for choice in spec.choices)
    elif spec.max is not None:
        most = spec.max
    else:
        return None
    return max(price(config, options), priced(pricing, most))


def settlement(settings: Settings, job: Job, produced: Mapping[str, float]) -> Settlement | None:
    """What a held job costs now that it completed: the price of what the upstream reports it
    produced, else (it reported nothing) the price of what was asked; never more than the hold."""
    config = settings.models.get(job.model)
    if job.hold is None or config is None or config.pricing is None:
        return None
    option = config.pricing.option
    if option in produced:
        amount = produced[option]
        cost = min(job.hold, priced(config.pricing, amount))
        note = f"settled to what was produced ({option} {amount:g}): {cost} of the {job.hold} held"
    else:
        cost = min(job.hold, price(config, job.options))
        note = f"the upstream reported nothing: settled to the request's price, {cost} of the {job.hold} held"
    return Settlement(cost, note)


def reported(adapter: object) -> frozenset[str]:
    """What an adapter's upstream reports about what it produced (an adapter's optional `reports`)."""
    return frozenset(getattr(adapter, "reports", ()))
