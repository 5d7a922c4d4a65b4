"""ComfyUI on your own GPU (the `local` provider): its answers and the adapter that follows them."""

from __future__ import annotations

from providers.comfyui.adapter import ComfyUIProvider
from providers.comfyui.answers import client_id_for, preview_frame

__all__ = ["ComfyUIProvider", "client_id_for", "preview_frame"]
