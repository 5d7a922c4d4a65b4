"""A ComfyUI prompt's run: the workflow's nodes in order, and the timed events executing them sends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from providers.simulator.timeline import Clock, TaskId, Timeline

TIMELINE = Timeline((("pending", 1.0), ("running", 9.0)))
SAMPLER_SHARE = 0.8
"""The sampler takes most of a run; every other node shares the rest."""
DEFAULT_STEPS = 20
FAILURE = "Simulated failure: the sampler ran out of memory (sim:fail)."
FALLBACK_WORKFLOW: dict[str, Any] = {
    "3": {"class_type": "KSampler", "inputs": {"steps": DEFAULT_STEPS}},
    "8": {"class_type": "VAEDecode", "inputs": {}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI"}},
}
"""Stands in for a workflow the simulator no longer remembers (a restart without a state dir)."""
SAFE_PREFIX = re.compile(r"[^A-Za-z0-9_-]+")
OUTPUT_FILE = re.compile(
    r"_(?P<id>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_\d{5}_\.(?P<ext>png|webm)"
)


def is_output(class_type: str) -> bool:
    return any(mark in class_type for mark in ("Save", "Preview", "VideoCombine"))


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


def execution_order(workflow: dict[str, Any]) -> list[str]:
    """Node ids with every node after the nodes its inputs link to (`["node id", output index]`)."""
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

    for node_id in sorted(workflow, key=_order_key):
        visit(node_id)
    return order


@dataclass(frozen=True)
class Plan:
    """How a prompt runs: its nodes in execution order, the sampler among them, and its outputs."""

    prompt_id: str
    nodes: tuple[tuple[str, str], ...]
    sampler: str
    steps: int
    outputs: dict[str, dict[str, list[dict[str, str]]]]

    @classmethod
    def of(cls, prompt_id: str, workflow: dict[str, Any]) -> Plan:
        nodes = tuple((k, str(workflow[k]["class_type"])) for k in execution_order(workflow))
        samplers = [k for k, cls_ in nodes if "Sampler" in cls_] or [
            k for k, cls_ in nodes if not is_output(cls_)
        ]
        sampler = (samplers or [nodes[0][0]])[0]
        steps = workflow[sampler].get("inputs", {}).get("steps")
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
                entry["type"] = "output"
                if video:
                    outputs[node_id] = {"gifs": [{**entry, "format": "video/webm"}]}
                else:
                    outputs[node_id] = {"images": [entry]}
        return cls(prompt_id, nodes, sampler, steps, outputs)

    def shares(self) -> list[tuple[str, str, float]]:
        """Each node with the share of the run it takes."""
        if len(self.nodes) == 1:
            return [(*self.nodes[0], 1.0)]
        other = (1 - SAMPLER_SHARE) / (len(self.nodes) - 1)
        return [(k, c, SAMPLER_SHARE if k == self.sampler else other) for k, c in self.nodes]


@dataclass(frozen=True)
class Event:
    age: float
    type: str
    data: dict[str, Any]

    def message(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data}


def _successful_run(plan: Plan, task: TaskId, clock: Clock) -> list[Event]:
    """The events of a run that nothing stops: start, each node (the sampler's steps), success."""
    pid = plan.prompt_id
    start = TIMELINE.start_of("running")
    span = TIMELINE.total - start
    timeline = [
        Event(start, "execution_start", {"prompt_id": pid, "timestamp": clock.wall_ms(task, start)}),
        Event(
            start,
            "execution_cached",
            {"nodes": [], "prompt_id": pid, "timestamp": clock.wall_ms(task, start)},
        ),
    ]
    at = start
    for node_id, _, share in plan.shares():
        took = span * share
        timeline.append(Event(at, "executing", {"node": node_id, "display_node": node_id, "prompt_id": pid}))
        if node_id == plan.sampler:
            for step in range(1, plan.steps + 1):
                data = {"value": step, "max": plan.steps, "prompt_id": pid, "node": node_id}
                timeline.append(Event(at + took * step / plan.steps, "progress", data))
        if node_id in plan.outputs:
            output = {
                "node": node_id,
                "display_node": node_id,
                "output": plan.outputs[node_id],
                "prompt_id": pid,
            }
            timeline.append(Event(at + took, "executed", output))
        at += took
    end = TIMELINE.total
    timeline.append(
        Event(end, "execution_success", {"prompt_id": pid, "timestamp": clock.wall_ms(task, end)})
    )
    return timeline


def _stopped_at(plan: Plan, timeline: list[Event], stop: float, interrupted: bool, stamp: int) -> list[Event]:
    """The run cut short at `stop` by an interrupt or a failure in the node running then."""
    kept = [e for e in timeline if e.age <= stop]
    started = [str(e.data["node"]) for e in kept if e.type == "executing"]
    node_id = started[-1] if started else plan.nodes[0][0]
    base = {
        "prompt_id": plan.prompt_id,
        "node_id": node_id,
        "node_type": dict(plan.nodes)[node_id],
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
