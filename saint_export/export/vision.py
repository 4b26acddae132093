"""Stage ``vision_onnx_from_torch``: LLaVA's vision encoder (CLIP tower + projector with ViT-only
SAINT, :class:`saint_export.models.llava.VisionEncoder`) traced to ONNX, then lowered and written
like every other export (:func:`saint_export.export.pipeline.write_lowered`).

The official iterative drop removes a count known before the data is seen, so it traces to
standard ops (TopK, GatherElements) with a static token dim: the portable model and the
TensorRT-lowered one are the same graph, and a TensorRT engine needs no plugin. With
``rule: bipartite`` each drop is a ``saint.SaintTokenDrop`` node (a voted count), lowered as usual.

Inputs ``pixels`` [batch, 3, S, S]; outputs ``image_embeds`` [batch, M, H] (the language model's
image features, float32) and ``kept_index`` [batch, M] int64 (the patch each came from).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import onnx_ir as ir

from ..errors import InputError
from ..models.llava import BuiltVision, build_vision
from ..models.record import (
    ModelRecord,
    config_json,
    metadata,
    metadata_entries,
    onnx_metadata,
)
from ..onnx_file import read_proto
from ..version import __version__
from .opdef import DOMAIN, version_for
from .pipeline import ExportResult, checked_targets, write_lowered
from .trace import name_drop_nodes, traced

OUTPUT_NAMES = ("image_embeds", "kept_index")
KIND = "llava_vision"  # metadata saint_export.kind


def record_of(built: BuiltVision) -> ModelRecord:
    """The model record; its one schedule row says what the tower drops (the iterative drop: a fixed
    count, so the engine is batch-independent; the bipartite rule: the batch's vote)."""

    s, tokens = built.saint, built.module.tokens
    row = ({"layer": s.vit_layer, "rule": "iterative", "fixed_r": tokens - s.keep, "divisor": s.divisor, "quirk": s.quirk}
           if s.rule == "iterative" else
           {"layer": s.vit_layer, "rule": "bipartite", "threshold": s.threshold, "k": s.k, "gamma": s.gamma, "fixed_r": -1})
    return ModelRecord(config_json(built.config), built.weights, [row], 1, "fp32", __version__)


def vision_metadata(built: BuiltVision) -> dict[str, str]:
    """The artifact's provenance: the model record plus what says it is a LLaVA vision encoder."""
    return {**record_of(built).to_metadata(), **metadata_entries(kind=KIND, llava=json.dumps(built.saint.__dict__))}


def vision_onnx_from_torch(built: BuiltVision, batch: int = 2, opset: int = 18) -> ir.Model:
    """Trace ``built.module`` (batch a dynamic axis) to an ONNX IR model carrying its metadata."""
    ir_model = traced(built.module, built.config.input_size, OUTPUT_NAMES, f"{built.config.alias}'s vision encoder",
                      batch, opset)
    if built.saint.rule == "bipartite":
        ir_model.opset_imports[DOMAIN] = version_for(False)
        name_drop_nodes(ir_model, [built.saint.vit_layer])
    ir_model.metadata_props.update(vision_metadata(built))
    ir_model.graph.name = f"{built.config.alias}_vision_saint"
    return ir_model


def vision_models_from_torch(built: BuiltVision, portable_path: Path, tensorrt_path: Path | None, *, opset: int = 18,
                             fp16: bool = False, force: bool = False,
                             progress: Callable[[str], None] = lambda s: None) -> ExportResult:
    """Trace, lower both ways and write; files appear only when all are complete."""
    portable_path, tensorrt_path = checked_targets(portable_path, tensorrt_path, force)
    progress("tracing the vision encoder with torch.onnx (dynamo)")
    return write_lowered(vision_onnx_from_torch(built, opset=opset), portable_path, tensorrt_path, fp16, force, progress)


def is_vision_onnx(path: Path) -> bool:
    """Whether ``path`` is a LLaVA vision encoder this stage wrote (its metadata says so)."""
    return onnx_metadata(path).get("kind") == KIND


def vision_from_onnx(path: Path, model_name: str | None = None, checkpoint: str | None = None,
                     weights: str | None = None) -> BuiltVision:
    """The PyTorch encoder an exported vision ONNX came from: same config (or ``model_name``'s),
    weights and SAINT settings."""

    props = {p.key: p.value for p in read_proto(Path(path)).metadata_props}
    record = ModelRecord.from_metadata(props, str(path))
    try:
        saint = json.loads(metadata(props)["llava"])
    except (KeyError, ValueError):
        raise InputError(f"{path}: no readable LLaVA settings in its metadata") from None
    weights, checkpoint, seed = record.weights_source(checkpoint, weights, str(path))
    return build_vision(record.model_config(model_name, str(path)), weights, checkpoint, overrides=saint, seed=seed)
