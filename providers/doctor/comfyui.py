"""ComfyUI: is the server there, and does it have every node type and model file the workflow names?"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from providers.base import ProviderSettings, upstream_message
from providers.doctor.findings import Finding, ok, problem, skipped, unreachable
from providers.workflows import workflow_path

MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
SHOWN = 8
"""At most this many missing things are listed; the rest are counted."""


def combo_choices(spec: Any) -> list[Any] | None:
    """The allowed values of a combo input, in either of ComfyUI's spellings, or None for other inputs:
    `[["a.safetensors", …], {…}]`, or (newer servers) `["COMBO", {"options": ["a.safetensors", …]}]`."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].get("options")
        return options if isinstance(options, list) else None
    return None


def _input_specs(info: Any) -> dict[str, Any]:
    inputs = info.get("input", {}) if isinstance(info, dict) else {}
    specs: dict[str, Any] = {}
    for group in ("required", "optional"):
        if isinstance(inputs.get(group), dict):
            specs.update(inputs[group])
    return specs


def missing(workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> list[str]:
    """What the server lacks: node types it does not know, and values of its list inputs (model files,
    sampler names …) that are not among the values it offers, which ComfyUI would refuse at submit."""
    found: list[str] = []
    for node_id, node in workflow.items():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if not isinstance(class_type, str) or class_type not in object_info:
            found.append(f"node {node_id}: node type {class_type!r} is not installed")
            continue
        specs = _input_specs(object_info[class_type])
        inputs = node.get("inputs", {})
        for name, value in inputs.items() if isinstance(inputs, dict) else ():
            choices = combo_choices(specs.get(name))
            if isinstance(value, str) and choices is not None and value not in choices:
                what = "model file" if value.lower().endswith(MODEL_FILE_SUFFIXES) else "value"
                found.append(
                    f"node {node_id} ({class_type}): {what} {value!r} for {name} is not on the server"
                )
    return found


def load_workflow(extra: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The configured workflow (`extra.workflow`: a path or a shipped one's name; else the shipped txt2img)
    and its file name; ValueError if it cannot be read."""
    path = workflow_path(extra.get("workflow"))
    try:
        nodes = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} could not be read: {exc}") from exc
    if not isinstance(nodes, dict):
        raise ValueError(f"{path} is not a workflow in API format (node id → class_type, inputs)")
    return path.name, nodes


def workflow_finding(name: str, workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> Finding:
    gaps = missing(workflow, object_info)
    if not gaps:
        return ok("workflow", f"{name}: all {len(workflow)} nodes and their model files are on the server")
    more = f"; and {len(gaps) - SHOWN} more" if len(gaps) > SHOWN else ""
    return problem("workflow", f"{name}: " + "; ".join(gaps[:SHOWN]) + more)


async def comfyui(
    http: httpx.AsyncClient, settings: ProviderSettings, params: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """`GET /object_info` (free, no credential): the node types and the files their inputs may name."""
    url = f"{http.base_url}".rstrip("/") + "/object_info"
    try:
        name, workflow = load_workflow(settings.extra)
    except ValueError as exc:
        workflow_problem: Finding | None = problem("workflow", str(exc))
        name, workflow = "", {}
    else:
        workflow_problem = None
    try:
        response = await http.get("/object_info")
    except httpx.TransportError as exc:
        return [unreachable(url, exc), workflow_problem or skipped("workflow", "not checked")]
    reachable = ok("reachable", f"{url} answered {response.status_code}")
    auth = skipped("auth", "ComfyUI has no credential")
    if not response.is_success:
        return [reachable, auth, problem("workflow", f"cannot list node types: {upstream_message(response)}")]
    try:
        object_info = response.json()
    except ValueError:
        object_info = None
    if not isinstance(object_info, dict):
        return [reachable, auth, problem("workflow", f"{url} did not answer a JSON object of node types")]
    return [reachable, auth, workflow_problem or workflow_finding(name, workflow, object_info)]
