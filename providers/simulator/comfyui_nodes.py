"""The node types the simulated ComfyUI knows (its small `/object_info`) and POST /prompt's validation
against them: unknown types refuse the workflow, outputs with missing inputs are left out."""

from __future__ import annotations

from typing import Any

# class_type → (required inputs with their type, output types, whether it is an output node)
NODES: dict[str, tuple[dict[str, str], tuple[str, ...], bool]] = {
    "CheckpointLoaderSimple": ({"ckpt_name": "COMBO"}, ("MODEL", "CLIP", "VAE"), False),
    "CLIPTextEncode": ({"text": "STRING", "clip": "CLIP"}, ("CONDITIONING",), False),
    "ConditioningCombine": (
        {"conditioning_1": "CONDITIONING", "conditioning_2": "CONDITIONING"},
        ("CONDITIONING",),
        False,
    ),
    "EmptyLatentImage": ({"width": "INT", "height": "INT", "batch_size": "INT"}, ("LATENT",), False),
    "KSampler": (
        {
            "model": "MODEL",
            "seed": "INT",
            "steps": "INT",
            "cfg": "FLOAT",
            "sampler_name": "COMBO",
            "scheduler": "COMBO",
            "positive": "CONDITIONING",
            "negative": "CONDITIONING",
            "latent_image": "LATENT",
            "denoise": "FLOAT",
        },
        ("LATENT",),
        False,
    ),
    "KSamplerAdvanced": (
        {
            "model": "MODEL",
            "add_noise": "COMBO",
            "noise_seed": "INT",
            "steps": "INT",
            "cfg": "FLOAT",
            "sampler_name": "COMBO",
            "scheduler": "COMBO",
            "positive": "CONDITIONING",
            "negative": "CONDITIONING",
            "latent_image": "LATENT",
            "start_at_step": "INT",
            "end_at_step": "INT",
            "return_with_leftover_noise": "COMBO",
        },
        ("LATENT",),
        False,
    ),
    "VAEDecode": ({"samples": "LATENT", "vae": "VAE"}, ("IMAGE",), False),
    "EmptyImage": ({"width": "INT", "height": "INT", "batch_size": "INT", "color": "INT"}, ("IMAGE",), False),
    "ImageInvert": ({"image": "IMAGE"}, ("IMAGE",), False),
    "ImageScale": (
        {"image": "IMAGE", "upscale_method": "COMBO", "width": "INT", "height": "INT", "crop": "COMBO"},
        ("IMAGE",),
        False,
    ),
    "SaveImage": ({"images": "IMAGE", "filename_prefix": "STRING"}, (), True),
    "PreviewImage": ({"images": "IMAGE"}, (), True),
    "SaveAnimatedWEBP": ({"images": "IMAGE", "filename_prefix": "STRING", "fps": "FLOAT"}, (), True),
}
COMBO_VALUES = {
    "ckpt_name": ["v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"],
    "sampler_name": ["euler", "euler_ancestral", "dpmpp_2m"],
    "scheduler": ["normal", "karras", "simple"],
    "add_noise": ["enable", "disable"],
    "return_with_leftover_noise": ["disable", "enable"],
    "upscale_method": ["nearest-exact", "bilinear", "bicubic"],
    "crop": ["disabled", "center"],
}


def object_info(only: str | None = None) -> dict[str, Any]:
    """`GET /object_info` (or `/object_info/{class}`): each node type in ComfyUI's shape."""
    info = {}
    for name, (inputs, outputs, output_node) in NODES.items():
        if only is not None and name != only:
            continue
        required = {
            key: [COMBO_VALUES.get(key, []), {}] if kind == "COMBO" else [kind, {}]
            for key, kind in inputs.items()
        }
        info[name] = {
            "input": {"required": required},
            "input_order": {"required": list(inputs)},
            "output": list(outputs),
            "output_is_list": [False] * len(outputs),
            "output_name": list(outputs),
            "name": name,
            "display_name": name,
            "description": "",
            "python_module": "nodes",
            "category": "simulated",
            "output_node": output_node,
        }
    return info


def is_output(class_type: str) -> bool:
    return NODES.get(class_type, ({}, (), False))[2]


def unknown_node(workflow: dict[str, Any]) -> dict[str, Any] | None:
    """ComfyUI's `error` for the first node of a type it does not have (it refuses the whole workflow)."""
    for node_id, node in workflow.items():
        class_type = node["class_type"]
        if class_type not in NODES:
            title = (node.get("_meta") or {}).get("title", class_type)
            return {
                "type": "missing_node_type",
                "message": f"Node '{title}' not found. The custom node may not be installed.",
                "details": f"Node ID '#{node_id}'",
                "extra_info": {"node_id": node_id, "class_type": class_type, "node_title": title},
            }
    return None


def _problems(workflow: dict[str, Any], node_id: str) -> list[dict[str, Any]]:
    node = workflow[node_id]
    inputs = node.get("inputs", {})
    errors = []
    for name in NODES[node["class_type"]][0]:
        value = inputs.get(name)
        if value is None:
            errors.append(
                {
                    "type": "required_input_missing",
                    "message": "Required input is missing",
                    "details": name,
                    "extra_info": {"input_name": name},
                }
            )
        elif isinstance(value, list) and (len(value) != 2 or str(value[0]) not in workflow):
            errors.append(
                {
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": f"{name}, {value}",
                    "extra_info": {"input_name": name, "received_value": value},
                }
            )
    return errors


def _ancestors(workflow: dict[str, Any], node_id: str) -> list[str]:
    seen: list[str] = []
    stack = [node_id]
    while stack:
        current = stack.pop()
        if current in seen or current not in workflow:
            continue
        seen.append(current)
        for value in workflow[current].get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                stack.append(value[0])
    return seen


def validate_outputs(workflow: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The output nodes that will run, and `node_errors` for the nodes that keep the others from running."""
    good: list[str] = []
    node_errors: dict[str, Any] = {}
    for output in (n for n, node in workflow.items() if is_output(node["class_type"])):
        failing = False
        for node_id in _ancestors(workflow, output):
            errors = _problems(workflow, node_id)
            if errors:
                failing = True
                entry = node_errors.setdefault(
                    node_id,
                    {
                        "errors": errors,
                        "dependent_outputs": [],
                        "class_type": workflow[node_id]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(output)
        if not failing:
            good.append(output)
    return good, node_errors
