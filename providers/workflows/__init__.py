"""ComfyUI workflows in API format: loading the configured one, finding the nodes that take a job's
prompt, seed and size (or taking the ones config names), and filling them in for a job."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.base import Task

log = logging.getLogger("providers.workflows")

SHIPPED = Path(__file__).parent
DEFAULT_WORKFLOW = SHIPPED / "txt2img.json"
TEXT_INPUTS = ("text", "prompt", "text_g", "positive_prompt")
"""String inputs that take a prompt, in the order they are looked for."""
SEED_INPUTS = ("seed", "noise_seed")
OUTPUT_MARKS = ("Save", "VideoCombine", "Preview")
"""What an output node's class name says, best first (a saved file beats a preview)."""
MAX_HOPS = 8

Target = tuple[str, str]
"""A node input: (node id, input name)."""


def _link(value: Any) -> str | None:
    """The node a linked input comes from (`["node id", output index]`), or None for a literal."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        return value[0]
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _order_key(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)


class Graph:
    """The workflow's nodes with the questions discovery asks of them."""

    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes = nodes
        self.ids = sorted(nodes, key=_order_key)

    def inputs(self, node_id: str) -> dict[str, Any]:
        inputs: dict[str, Any] = self.nodes.get(node_id, {}).get("inputs", {})
        return inputs

    def class_type(self, node_id: str) -> str:
        return str(self.nodes.get(node_id, {}).get("class_type", ""))

    def linked_from(self, input_name: str) -> Iterator[str]:
        """Every node that feeds an input of this name somewhere."""
        for node_id in self.ids:
            source = _link(self.inputs(node_id).get(input_name))
            if source is not None and source in self.nodes:
                yield source

    def text_input(self, node_id: str, names: tuple[str, ...] = TEXT_INPUTS) -> Target | None:
        inputs = self.inputs(node_id)
        return next(((node_id, n) for n in names if isinstance(inputs.get(n), str)), None)

    def text_upstream(self, start: str, names: tuple[str, ...] = TEXT_INPUTS) -> Target | None:
        """The first string prompt input found walking back from `start` (through conditioning nodes)."""
        frontier, seen = [start], {start}
        for _ in range(MAX_HOPS):
            for node_id in frontier:
                if found := self.text_input(node_id, names):
                    return found
            frontier = [
                source
                for node_id in frontier
                for value in self.inputs(node_id).values()
                if (source := _link(value)) is not None and source in self.nodes and source not in seen
            ]
            seen.update(frontier)
        return None

    def find_prompt(self, input_name: str | None = None) -> Target | None:
        """What a sampler's `positive` input leads back to; else the first text input that no
        `negative` input leads back to."""
        names = (input_name,) if input_name else TEXT_INPUTS
        for source in self.linked_from("positive"):
            if found := self.text_upstream(source, names):
                return found
        negative = {
            t[0] for s in self.linked_from("negative") if (t := self.text_upstream(s, names)) is not None
        }
        candidates = (self.text_input(n, names) for n in self.ids if n not in negative)
        return next((found for found in candidates if found is not None), None)

    def find_seeds(self) -> tuple[Target, ...]:
        return tuple(
            (node_id, name)
            for node_id in self.ids
            for name in SEED_INPUTS
            if _whole(self.inputs(node_id).get(name))
        )

    def has_size(self, node_id: str) -> bool:
        inputs = self.inputs(node_id)
        return _whole(inputs.get("width")) and _whole(inputs.get("height"))

    def find_size(self) -> str | None:
        """The node a sampler's `latent_image` comes from; else the first latent node with a size;
        else the first node with literal `width` and `height`."""
        sized = [n for n in self.ids if self.has_size(n)]
        latent = [n for n in self.linked_from("latent_image") if n in sized]
        named = [n for n in sized if "Latent" in self.class_type(n)]
        return next(iter(latent or named or sized), None)

    def find_output(self) -> str | None:
        for mark in OUTPUT_MARKS:
            for node_id in self.ids:
                if mark in self.class_type(node_id):
                    return node_id
        return None


@dataclass(frozen=True)
class Workflow:
    """The configured workflow and which node inputs take the job's values."""

    nodes: dict[str, Any]
    prompt: Target | None
    """Where the prompt goes; None for a workflow that takes no text (a smoke test)."""
    seeds: tuple[Target, ...]
    """Every input the job's seed goes into (all of a workflow's samplers, unless config names one)."""
    size: str | None
    """The node with `width` and `height` inputs, when there is one."""
    output_node: str | None
    has_sampler: bool
    """Whether a node reports steps (a sampler); without one, progress is counted in nodes."""

    @classmethod
    def load(cls, extra: Mapping[str, Any]) -> Workflow:
        """From the provider's config (`workflow`, and optionally `prompt_node`, `prompt_input`,
        `seed_node`, `seed_input`, `size_node`, `output_node` to override what is found); a
        ValueError names what does not fit, at start-up."""
        path = workflow_path(extra.get("workflow"))
        try:
            nodes = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"ComfyUI workflow {path} could not be read: {exc}") from exc
        if not isinstance(nodes, dict) or not all(
            isinstance(node, dict) and isinstance(node.get("inputs"), dict) for node in nodes.values()
        ):
            raise ValueError(f"ComfyUI workflow {path} is not in API format (node id → class_type, inputs).")
        graph = Graph(nodes)

        def named(node_key: str) -> str | None:
            """The node config names for `node_key`: None when it names none, "" to turn it off."""
            value = extra.get(node_key)
            if value is None:
                return None
            node_id = str(value)
            if node_id and node_id not in nodes:
                raise ValueError(f"ComfyUI workflow {path} has no node {node_id!r} ({node_key}).")
            return node_id

        def named_input(node_key: str, input_key: str, choices: tuple[str, ...]) -> Target | None:
            node_id = named(node_key)
            assert node_id  # only asked when a node is named
            wanted = extra.get(input_key)
            names = (str(wanted),) if wanted else choices
            inputs = graph.inputs(node_id)
            found = next((name for name in names if name in inputs), None)
            if found is None:
                raise ValueError(
                    f"ComfyUI workflow {path}: node {node_id!r} has no input "
                    + " or ".join(repr(n) for n in names)
                    + f" ({node_key})."
                )
            return node_id, found

        prompt_node, seed_node, size_node = named("prompt_node"), named("seed_node"), named("size_node")
        if prompt_node is None:
            wanted = extra.get("prompt_input")
            prompt = graph.find_prompt(str(wanted) if wanted else None)
        else:
            prompt = named_input("prompt_node", "prompt_input", TEXT_INPUTS) if prompt_node else None
        seeds: tuple[Target | None, ...] = graph.find_seeds()
        if seed_node is not None:
            seeds = (named_input("seed_node", "seed_input", SEED_INPUTS),) if seed_node else ()
        if size_node and not {"width", "height"} <= set(graph.inputs(size_node)):
            raise ValueError(
                f"ComfyUI workflow {path}: node {size_node!r} has no width and height (size_node)."
            )
        size = graph.find_size() if size_node is None else size_node or None
        output = named("output_node")
        workflow = cls(
            nodes=nodes,
            prompt=prompt,
            seeds=tuple(s for s in seeds if s is not None),
            size=size,
            output_node=graph.find_output() if output is None else output or None,
            has_sampler=any(
                "steps" in graph.inputs(n) or "Sampler" in graph.class_type(n) for n in graph.ids
            ),
        )
        log.info("ComfyUI workflow %s: %s", path, workflow.describe())
        if prompt is None:
            log.warning("ComfyUI workflow %s takes no prompt: jobs' prompts are not sent upstream", path)
        return workflow

    def describe(self) -> str:
        def where(target: Target | None) -> str:
            return f"node {target[0]} input {target[1]}" if target else "none"

        seeds = ", ".join(where(s) for s in self.seeds) or "none"
        return (
            f"prompt → {where(self.prompt)}; seed → {seeds}; size → "
            f"{f'node {self.size}' if self.size else 'none'}; output → {self.output_node or 'any'}"
        )

    def for_task(self, task: Task) -> dict[str, Any]:
        """A copy of the workflow with the task's prompt, and its seed and size where given."""
        nodes = copy.deepcopy(self.nodes)
        if self.prompt is not None:
            nodes[self.prompt[0]]["inputs"][self.prompt[1]] = task.prompt
        if "seed" in task.options:
            for node_id, name in self.seeds:
                nodes[node_id]["inputs"][name] = task.options["seed"]
        if self.size is not None:
            for option in ("width", "height"):
                if option in task.options:
                    nodes[self.size]["inputs"][option] = task.options[option]
        return nodes


def workflow_path(configured: Any) -> Path:
    """The configured path; a bare name of a workflow shipped here (`model_free.json`) works too."""
    if not configured:
        return DEFAULT_WORKFLOW
    path = Path(str(configured))
    shipped = SHIPPED / path.name
    if not path.exists() and path.name == str(configured) and shipped.is_file():
        return shipped
    return path
