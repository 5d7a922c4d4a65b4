"""ComfyUI workflows in API format: the shipped txt2img, loading the configured one, and putting a
job's prompt, seed and size into the node inputs config names."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.base import Task

DEFAULT_WORKFLOW = Path(__file__).parent / "txt2img.json"
# Node ids of the shipped workflow; a custom workflow names its own in config.
DEFAULT_NODES = {"prompt_node": "6", "seed_node": "3", "size_node": "5"}


@dataclass(frozen=True)
class Workflow:
    """The configured workflow and which node inputs take the job's values (node id, input name)."""

    nodes: dict[str, Any]
    prompt: tuple[str, str]
    seed: tuple[str, str] | None
    size: str | None
    """The node with `width` and `height` inputs, when there is one."""
    output_node: str | None

    @classmethod
    def load(cls, extra: Mapping[str, Any]) -> Workflow:
        """From the provider's config (`workflow`, `prompt_node`, `prompt_input`, `seed_node`, `seed_input`,
        `size_node`, `output_node`); a ValueError names what does not fit, at start-up."""
        path = Path(str(extra.get("workflow") or DEFAULT_WORKFLOW))
        try:
            nodes = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"ComfyUI workflow {path} could not be read: {exc}") from exc
        if not isinstance(nodes, dict) or not all(
            isinstance(node, dict) and isinstance(node.get("inputs"), dict) for node in nodes.values()
        ):
            raise ValueError(f"ComfyUI workflow {path} is not in API format (node id → class_type, inputs).")

        def node_input(node_key: str, input_key: str, default_input: str) -> tuple[str, str] | None:
            node_id = str(extra.get(node_key, DEFAULT_NODES[node_key]))
            if not node_id:
                return None
            name = str(extra.get(input_key, default_input))
            if name not in nodes.get(node_id, {}).get("inputs", {}):
                raise ValueError(
                    f"ComfyUI workflow {path}: node {node_id!r} has no input {name!r} ({node_key})."
                )
            return node_id, name

        prompt = node_input("prompt_node", "prompt_input", "text")
        if prompt is None:
            raise ValueError(f"ComfyUI workflow {path}: prompt_node must name a node.")
        size = str(extra.get("size_node", DEFAULT_NODES["size_node"]))
        output_node = extra.get("output_node")
        return cls(
            nodes=nodes,
            prompt=prompt,
            seed=node_input("seed_node", "seed_input", "seed"),
            size=size if {"width", "height"} <= set(nodes.get(size, {}).get("inputs", {})) else None,
            output_node=str(output_node) if output_node else None,
        )

    def for_task(self, task: Task) -> dict[str, Any]:
        """A copy of the workflow with the task's prompt, and its seed and size where given."""
        nodes = copy.deepcopy(self.nodes)
        nodes[self.prompt[0]]["inputs"][self.prompt[1]] = task.prompt
        if self.seed is not None and "seed" in task.options:
            nodes[self.seed[0]]["inputs"][self.seed[1]] = task.options["seed"]
        if self.size is not None:
            for option in ("width", "height"):
                if option in task.options:
                    nodes[self.size]["inputs"][option] = task.options[option]
        return nodes
