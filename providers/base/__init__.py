"""The Provider seam: the request an adapter gets (task), the updates it yields (updates), the HTTP
client and readers every adapter shares (upstream), and small helpers of its loop (helpers)."""

from __future__ import annotations

from providers.base.helpers import Changes, ElapsedEstimate, delete_unless_finished, guess_content_type
from providers.base.task import ProviderSettings, RetryPolicy, Sleep, Task, UpstreamObserver
from providers.base.updates import (
    Failed,
    FindsSubmitted,
    MalformedUpstream,
    OptionError,
    Preview,
    Progress,
    Provider,
    Queued,
    Submitted,
    Submitting,
    SubmitUncertain,
    Succeeded,
    Update,
    UpstreamError,
)
from providers.base.upstream import (
    NOT_SENT,
    UpstreamClient,
    account_refusal,
    apply_style_suffix,
    backoff_delay,
    parse,
    poll_pause,
    retry_after_seconds,
    upstream_message,
)

__all__ = [
    "NOT_SENT",
    "Changes",
    "ElapsedEstimate",
    "Failed",
    "FindsSubmitted",
    "MalformedUpstream",
    "OptionError",
    "Preview",
    "Progress",
    "Provider",
    "ProviderSettings",
    "Queued",
    "RetryPolicy",
    "Sleep",
    "SubmitUncertain",
    "Submitted",
    "Submitting",
    "Succeeded",
    "Task",
    "Update",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamObserver",
    "account_refusal",
    "apply_style_suffix",
    "backoff_delay",
    "delete_unless_finished",
    "guess_content_type",
    "parse",
    "poll_pause",
    "retry_after_seconds",
    "upstream_message",
]
