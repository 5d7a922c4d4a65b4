"""ComfyUI's `GET /object_info`: the node types this simulated server has and the model files it offers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

CHECKPOINTS = ("v1-5-pruned-emaonly.safetensors",)
"""The model files in the simulated `models/checkpoints` folder."""
SAMPLERS = ("euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "uni_pc")
SCHEDULERS = ("normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta")
INT = {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}
SIZE = {"default": 512, "min": 16, "max": 16384, "step": 8}


def _node(
    name: str,
    category: str,
    required: dict[str, Any],
    outputs: tuple[str, ...] = (),
    *,
    output_node: bool = False,
    hidden: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One node type as ComfyUI describes it; a combo input is `[[choices…], {options}]`."""
    return {
        "input": {"required": required, "optional": {}, "hidden": hidden or {}},
        "input_order": {"required": list(required)},
        "output": list(outputs),
        "output_is_list": [False] * len(outputs),
        "output_name": list(outputs),
        "name": name,
        "display_name": name,
        "description": "",
        "python_module": "nodes",
        "category": category,
        "output_node": output_node,
    }


IMAGE_OUTPUT_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
NODES: dict[str, dict[str, Any]] = {
    node["name"]: node
    for node in (
        _node(
            "KSampler",
            "sampling",
            {
                "model": ["MODEL", {}],
                "seed": ["INT", INT],
                "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}],
                "sampler_name": [list(SAMPLERS), {}],
                "scheduler": [list(SCHEDULERS), {}],
                "positive": ["CONDITIONING", {}],
                "negative": ["CONDITIONING", {}],
                "latent_image": ["LATENT", {}],
                "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}],
            },
            ("LATENT",),
        ),
        _node(
            "CheckpointLoaderSimple",
            "loaders",
            {"ckpt_name": [list(CHECKPOINTS), {}]},
            ("MODEL", "CLIP", "VAE"),
        ),
        _node(
            "EmptyLatentImage",
            "latent",
            {"width": ["INT", SIZE], "height": ["INT", SIZE], "batch_size": ["INT", {"default": 1}]},
            ("LATENT",),
        ),
        _node(
            "CLIPTextEncode",
            "conditioning",
            {"text": ["STRING", {"multiline": True}], "clip": ["CLIP", {}]},
            ("CONDITIONING",),
        ),
        _node("VAEDecode", "latent", {"samples": ["LATENT", {}], "vae": ["VAE", {}]}, ("IMAGE",)),
        _node(
            "EmptyImage",
            "image",
            {
                "width": ["INT", SIZE],
                "height": ["INT", SIZE],
                "batch_size": ["INT", {"default": 1}],
                "color": ["INT", {"default": 0, "min": 0, "max": 0xFFFFFF}],
            },
            ("IMAGE",),
        ),
        _node(
            "SaveImage",
            "image",
            {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
            output_node=True,
            hidden=IMAGE_OUTPUT_HIDDEN,
        ),
        _node(
            "PreviewImage", "image", {"images": ["IMAGE", {}]}, output_node=True, hidden=IMAGE_OUTPUT_HIDDEN
        ),
    )
}


async def object_info(request: Request) -> Response:
    """Every node type, or one (`/object_info/{node_class}`; `{}` when there is no such type)."""
    wanted = request.path_params.get("node_class")
    if wanted is None:
        return JSONResponse(NODES)
    return JSONResponse({wanted: NODES[wanted]} if wanted in NODES else {})
