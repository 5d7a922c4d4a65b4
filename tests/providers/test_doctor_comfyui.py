"""The ComfyUI check reads both spellings of a list input in `/object_info`."""

from __future__ import annotations

from providers.doctor.comfyui import missing

WORKFLOW = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


def test_the_older_combo_spelling() -> None:
    info = {
        "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors"], {}]}}},
        "SaveImage": {"input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {}]}}},
    }
    assert missing(WORKFLOW, info) == [
        "node 1 (CheckpointLoaderSimple): model file 'flux1-dev.safetensors' for ckpt_name is not on the server"
    ]


def test_the_newer_combo_spelling() -> None:
    info = {
        "CheckpointLoaderSimple": {
            "input": {"required": {"ckpt_name": ["COMBO", {"options": ["flux1-dev.safetensors"]}]}}
        },
        "SaveImage": {"input": {"required": {"images": ["IMAGE", {}]}}},
    }
    assert missing(WORKFLOW, info) == []
    assert missing(WORKFLOW, {"SaveImage": info["SaveImage"]}) == [
        "node 1: node type 'CheckpointLoaderSimple' is not installed"
    ]
