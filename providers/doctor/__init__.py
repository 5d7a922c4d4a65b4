"""`gateway doctor`'s view of each upstream: which check runs for which adapter, and what it finds."""

from __future__ import annotations

from providers.doctor import comfyui, upstreams
from providers.doctor.findings import Finding, Probe, Status, ok, problem, skipped

PROBES: dict[str, Probe] = {
    "providers.suno:SunoProvider": upstreams.suno,
    "providers.luma:LumaProvider": upstreams.luma,
    "providers.pika:PikaProvider": upstreams.fal,
    "providers.runway:RunwayProvider": upstreams.runway,
    "providers.comfyui:ComfyUIProvider": comfyui.comfyui,
}
"""By the adapter named in config.toml; an adapter without a probe is shown as not checked."""

__all__ = ["PROBES", "Finding", "Probe", "Status", "ok", "problem", "skipped"]
