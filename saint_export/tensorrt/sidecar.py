"""The engine sidecar ``MODEL.plan.json``: what Polygraphy has no place for — the model's
provenance (its :class:`ModelRecord`), how the engine was built, and what it needs to load."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..export.opdef import PLUGIN_NAMESPACE, PLUGIN_VERSION
from ..models.record import ModelRecord
from ..version import __version__

if TYPE_CHECKING:
    from .engine import EngineOptions


def sidecar_path(plan_path: Path) -> Path:
    return Path(plan_path).with_suffix(Path(plan_path).suffix + ".json")


def sidecar(options: "EngineOptions", io: list[dict[str, Any]], plugin_lib: Path | None, trt_version: str,
            record: ModelRecord) -> dict[str, Any]:
    """The JSON written beside an engine: what it is (the ONNX file's ModelRecord), how it was built, what it needs."""

    return {
        "model": record.alias,
        "record": record.to_json(),
        "batch_invariant": record.batch_invariant,
        "precision": options.precision,
        "tensorrt_version": trt_version,
        "plugin": {"name": "SaintTokenDrop", "version": PLUGIN_VERSION, "namespace": PLUGIN_NAMESPACE,
                   "library": str(plugin_lib), "serialized_into_engine": options.plugin_embedded}
                  if plugin_lib else None,  # a graph of standard ops (LLaVA's iterative vision encoder)
        "saint_export_version": __version__,
        "io": io,
        "build_options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
    }


def read_sidecar(plan: Path) -> dict[str, Any]:
    path = sidecar_path(plan)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path} not found: build the engine with 'saint-export MODEL --engine {plan}' (it writes the sidecar)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read engine sidecar {path}: {exc}") from None


def record_of_engine(plan: Path) -> ModelRecord:
    return ModelRecord.from_json(read_sidecar(plan).get("record") or {}, f"{sidecar_path(plan)}")
