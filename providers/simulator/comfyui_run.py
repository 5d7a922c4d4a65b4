"""A ComfyUI prompt's run: the workflow's nodes in order, and the timed events executing them sends."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from providers.simulator.comfyui_nodes import is_output, unknown_node, validate_outputs
from providers.simulator.media import preview_png
from providers.simulator.timeline import Clock, TaskId, Timeline

TIMELINE = Timeline((("pending", 1.0), ("running", 9.0)))
SAMPLER_SHARE = 0.8
"""The sampler takes most of a run; every other node shares the rest."""
DEFAULT_STEPS = 20
FAILURE = "Simulated failure: the sampler ran out of memory (sim:fail)."
FALLBACK_WORKFLOW: dict[str, Any] = {
    "3": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["3", 0]}},
}
"""Stands in for a workflow the simulator no longer remembers (a restart without a state dir)."""
SAFE_PREFIX = re.compile(r"[^A-Za-z0-9_-]+")
OUTPUT_FILE = re.compile(
    r"_(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_\d{5}_\.(?P<ext>png|webm)"
)


PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA, PNG = 1, 4, 2
"""Binary websocket messages: a 4-byte event type; PREVIEW_IMAGE then has a 4-byte image format and
the image, PREVIEW_IMAGE_WITH_METADATA a 4-byte length, that much JSON and the image."""


def workflow_problem(workflow: Any) -> dict[str, Any] | None:
    """ComfyUI's `error` object for a workflow it would refuse, or None."""

    def error(kind: str, message: str, details: str = "") -> dict[str, Any]:
        return {"type": kind, "message": message, "details": details, "extra_info": {}}

    if not isinstance(workflow, dict) or not workflow:
        return error(
            "invalid_prompt", "Prompt is not a workflow in API format", "expected an object of nodes"
        )
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            message = "Cannot execute because a node is missing the class_type property."
            return error("invalid_prompt", message, f"Node ID '#{node_id}'")
        if not isinstance(node.get("inputs", {}), dict):
            return error("invalid_prompt", "Node inputs must be an object", f"Node ID '#{node_id}'")
    if missing := unknown_node(workflow):
        return missing
    if not any(is_output(node["class_type"]) for node in workflow.values()):
        return error("prompt_no_outputs", "Prompt has no outputs")
    return None


def prompt_text(workflow: dict[str, Any]) -> str:
    """Every string input of the workflow: wherever the prompt went, directives in it are found."""
    return " ".join(
        value
        for node in workflow.values()
        for value in node.get("inputs", {}).values()
        if isinstance(value, str)
    )


def _order_key(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)


def execution_order(workflow: dict[str, Any], only: str | None = None) -> list[str]:
    """Node ids with every node after the nodes its inputs link to (`["node id", output index]`);
    with `only`, just that node and the nodes it reads from."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in order or node_id in visiting:  # a cycle runs in id order rather than forever
            return
        visiting.add(node_id)
        for value in workflow[node_id].get("inputs", {}).values():
            if (
                isinstance(value, list)
                and len(value) == 2
                and isinstance(value[0], str)
                and value[0] in workflow
            ):
                visit(value[0])
        order.append(node_id)

    for node_id in [only] if only is not None else sorted(workflow, key=_order_key):
        visit(node_id)
    return order


def cached_nodes(workflow: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    """The nodes ComfyUI would take from its cache: unchanged since the previous prompt, as are all the
    nodes they read from (outputs always run)."""
    if not previous:
        return []
    cached: list[str] = []
    for node_id in execution_order(workflow):
        node = workflow[node_id]
        links = [v[0] for v in node.get("inputs", {}).values() if isinstance(v, list) and len(v) == 2]
        if (
            not is_output(node["class_type"])
            and previous.get(node_id) == node
            and all(link in cached for link in links)
        ):
            cached.append(node_id)
    return cached


@dataclass(frozen=True)
class Plan:
    """How a prompt runs: the nodes it executes in order, the sampler among them, and its outputs."""

    prompt_id: str
    nodes: tuple[tuple[str, str], ...]
    sampler: str | None
    steps: int
    outputs: dict[str, dict[str, list[dict[str, str]]]]
    cached: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, prompt_id: str, workflow: dict[str, Any], cached: list[str] | None = None) -> Plan:
        good, _ = validate_outputs(workflow)
        wanted = {n for output in good for n in execution_order(workflow, output)} or set(workflow)
        skip = set(cached or ())
        nodes = tuple(
            (k, str(workflow[k]["class_type"]))
            for k in execution_order(workflow)
            if k in wanted and k not in skip
        )
        samplers = [k for k, cls_ in nodes if "Sampler" in cls_]
        sampler = samplers[0] if samplers else None
        steps = workflow[sampler].get("inputs", {}).get("steps") if sampler else None
        steps = (
            steps
            if isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 200
            else DEFAULT_STEPS
        )
        outputs = {}
        for node_id, class_type in nodes:
            if is_output(class_type):
                prefix = workflow[node_id].get("inputs", {}).get("filename_prefix")
                prefix = SAFE_PREFIX.sub("_", prefix) if isinstance(prefix, str) and prefix else "ComfyUI"
                video = "Video" in class_type or "WEBM" in class_type
                entry = {
                    "filename": f"{prefix}_{prompt_id}_00001_.{'webm' if video else 'png'}",
                    "subfolder": "",
                }
                entry["type"] = "temp" if class_type == "PreviewImage" else "output"
                if video:
                    outputs[node_id] = {"gifs": [{**entry, "format": "video/webm"}]}
                else:
                    outputs[node_id] = {"images": [entry]}
        return cls(prompt_id, nodes, sampler, steps, outputs, tuple(c for c in cached or () if c in wanted))

    def shares(self) -> list[tuple[str, str, float]]:
        """Each node with the share of the run it takes."""
        if len(self.nodes) == 1 or self.sampler is None:
            return [(k, c, 1 / len(self.nodes)) for k, c in self.nodes]
        other = (1 - SAMPLER_SHARE) / (len(self.nodes) - 1)
        return [(k, c, SAMPLER_SHARE if k == self.sampler else other) for k, c in self.nodes]


@dataclass(frozen=True)
class Event:
    age: float
    type: str
    data: dict[str, Any]
    image: bytes | None = None
    """A preview image (PNG), sent as a binary message; `type` is then "preview"."""

    def message(self, with_metadata: bool = False) -> dict[str, Any] | bytes:
        """The websocket message: JSON, or a binary preview (with metadata for clients that said
        `supports_preview_metadata` in their feature flags)."""
        if self.image is None:
            return {"type": self.type, "data": self.data}
        if not with_metadata:
            return struct.pack(">II", PREVIEW_IMAGE, PNG) + self.image
        metadata = json.dumps({**self.data, "image_type": "image/png"}).encode()
        return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(metadata)) + metadata + self.image


class NodeStates:
    """The per-node progress ComfyUI reports in `progress_state` (only nodes that have started)."""

    def __init__(self, prompt_id: str, cached: tuple[str, ...]) -> None:
        self.prompt_id = prompt_id
        self.states: dict[str, tuple[str, float, float]] = {n: ("finished", 1.0, 1.0) for n in cached}

    def set(self, node_id: str, state: str, value: float, maximum: float) -> dict[str, Any]:
        self.states[node_id] = (state, value, maximum)
        nodes = {
            n: {
                "value": v,
                "max": m,
                "state": st,
                "node_id": n,
                "prompt_id": self.prompt_id,
                "display_node_id": n,
                "parent_node_id": None,
                "real_node_id": n,
            }
            for n, (st, v, m) in self.states.items()
        }
        return {"prompt_id": self.prompt_id, "nodes": nodes}


def _successful_run(plan: Plan, task: TaskId, clock: Clock) -> list[Event]:
    """The events of a run that nothing stops: start, the cached nodes, each node (progress_state as it
    starts and ends; the sampler's steps with a preview image each), success."""
    pid = plan.prompt_id
    start = TIMELINE.start_of("running")
    span = TIMELINE.total - start
    timeline = [
        Event(start, "execution_start", {"prompt_id": pid, "timestamp": clock.wall_ms(task, start)}),
        Event(
            start,
            "execution_cached",
            {"nodes": list(plan.cached), "prompt_id": pid, "timestamp": clock.wall_ms(task, start)},
        ),
    ]
    states = NodeStates(pid, plan.cached)
    at = start
    for node_id, _, share in plan.shares():
        took = span * share
        timeline.append(Event(at, "executing", {"node": node_id, "display_node": node_id, "prompt_id": pid}))
        timeline.append(Event(at, "progress_state", states.set(node_id, "running", 0, 1)))
        if node_id == plan.sampler:
            for step in range(1, plan.steps + 1):
                step_at = at + took * step / plan.steps
                data = {"value": step, "max": plan.steps, "prompt_id": pid, "node": node_id}
                timeline.append(
                    Event(step_at, "progress_state", states.set(node_id, "running", step, plan.steps))
                )
                timeline.append(Event(step_at, "progress", data))
                about = {
                    "node_id": node_id,
                    "prompt_id": pid,
                    "display_node_id": node_id,
                    "parent_node_id": None,
                    "real_node_id": node_id,
                }
                timeline.append(Event(step_at, "preview", about, preview_png(step, plan.steps)))
        if node_id in plan.outputs:
            output = {
                "node": node_id,
                "display_node": node_id,
                "output": plan.outputs[node_id],
                "prompt_id": pid,
            }
            timeline.append(Event(at + took, "executed", output))
        at += took
        timeline.append(Event(at, "progress_state", states.set(node_id, "finished", 1, 1)))
    end = TIMELINE.total
    timeline.append(
        Event(end, "execution_success", {"prompt_id": pid, "timestamp": clock.wall_ms(task, end)})
    )
    return timeline


def _stopped_at(plan: Plan, timeline: list[Event], stop: float, interrupted: bool, stamp: int) -> list[Event]:
    """The run cut short at `stop` by an interrupt or a failure in the node running then."""
    kept = [e for e in timeline if e.age <= stop]
    started = [str(e.data["node"]) for e in kept if e.type == "executing"]
    node_id = started[-1] if started else plan.nodes[0][0] if plan.nodes else "0"
    base = {
        "prompt_id": plan.prompt_id,
        "node_id": node_id,
        "node_type": dict(plan.nodes).get(node_id, "unknown"),
        "executed": started[:-1],
    }
    if interrupted:
        return [*kept, Event(stop, "execution_interrupted", {**base, "timestamp": stamp})]
    error = {
        **base,
        "exception_message": FAILURE,
        "exception_type": "torch.OutOfMemoryError",
        "traceback": ["Traceback (most recent call last):\n", "torch.OutOfMemoryError: simulated\n"],
        "current_inputs": {},
        "current_outputs": {},
        "timestamp": stamp,
    }
    return [*kept, Event(stop, "execution_error", error)]


def events(plan: Plan, task: TaskId, clock: Clock, interrupted_age: float | None = None) -> list[Event]:
    """Everything the websocket says about one prompt, in order, each with the age it happens at."""
    timeline = _successful_run(plan, task, clock)
    end = TIMELINE.total
    failure = TIMELINE.fail_age if task.fails else end
    interrupt = interrupted_age if interrupted_age is not None else end
    if min(failure, interrupt) < end:
        end = min(failure, interrupt)
        timeline = _stopped_at(plan, timeline, end, interrupt < failure, clock.wall_ms(task, end))
    # ComfyUI ends every prompt, failed or not, with `executing` for node null.
    return [*timeline, Event(end, "executing", {"node": None, "prompt_id": plan.prompt_id})]


HISTORY_TYPES = (
    "execution_start",
    "execution_cached",
    "execution_success",
    "execution_error",
    "execution_interrupted",
)


def status_messages(timeline: list[Event]) -> list[list[Any]]:
    """The run's events as `/history` lists them under `status.messages`."""
    return [[e.type, e.data] for e in timeline if e.type in HISTORY_TYPES]
