"""A loopback upstream simulator speaking suno-api, Luma, fal (Pika), Runway and ComfyUI protocols."""

from providers.simulator.app import PREFIXES, build_app, serve

__all__ = ["PREFIXES", "build_app", "serve"]
