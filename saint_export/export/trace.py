"""Stage ``onnx_from_torch``: trace the SAINT-patched model with the dynamo ONNX exporter.

Each pruning block becomes one ``saint.SaintTokenDrop`` node (no body yet; see the
lowering passes). Batch is a dynamic axis named ``batch``; the token count after
every pruning node is a fresh symbolic dim, so one file serves every drop count.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings

import onnx_ir as ir
import torch

from ..errors import StageError
from ..models import BuiltModel
from ..patch import pruning
from .opdef import DOMAIN, VERSION, translation_table
from .passes import drop_nodes, with_outputs

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
META_PREFIX = "saint_export."


def model_metadata(built: BuiltModel, pruned: bool) -> dict[str, str]:
    from .. import __version__

    cfg = built.config
    return {
        "model": cfg.alias,
        "timm_name": cfg.timm_name,
        "weights": built.weights,
        "input_size": str(cfg.input_size),
        "mean": json.dumps(list(cfg.mean)),
        "std": json.dumps(list(cfg.std)),
        "crop_pct": str(cfg.crop_pct),
        "protected": str(built.protected),
        "schedule": json.dumps(built.schedule.to_json() if pruned else []),
        "pruned": "1" if pruned else "0",
        "version": __version__,
        "config": json.dumps(config_json(cfg)),
    }


def config_json(cfg) -> dict:
    """The ModelConfig as a YAML-style mapping (variants resolved), so the file is self-describing."""
    return {"alias": cfg.alias, "timm_name": cfg.timm_name, "input_size": cfg.input_size, "mean": list(cfg.mean),
            "std": list(cfg.std), "crop_pct": cfg.crop_pct, "protected": cfg.protected,
            "model_kwargs": dict(cfg.model_kwargs), "hub_weights": cfg.hub_weights, "schedule": dict(cfg.schedule)}


def onnx_from_torch(built: BuiltModel, batch: int = 2, opset: int = 18, pruned: bool = True) -> ir.Model:
    """Export ``built.model`` (SAINT on, or dense with ``pruned=False``) to an ONNX IR model."""
    if opset < 18:
        raise StageError("trace", f"opset {opset} is too old; SaintTokenDrop's function needs opset >= 18")
    model = built.model
    example = torch.zeros(batch, 3, built.config.input_size, built.config.input_size)
    try:
        with pruning(model, pruned), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, (example,), dynamo=True, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                custom_translation_table=translation_table(), verbose=False, report=False,
            )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StageError("trace", f"torch.onnx.export failed for {built.config.alias}: {first[:300]}") from exc
    ir_model = program.model
    if pruned and built.schedule.rules:
        ir_model.opset_imports[DOMAIN] = VERSION
    for key, value in model_metadata(built, pruned).items():
        ir_model.metadata_props[META_PREFIX + key] = value
    ir_model.graph.name = f"{built.config.alias}_{'saint' if pruned else 'dense'}"
    drops = drop_nodes(ir_model)
    if pruned and len(drops) != len(built.schedule.rules):
        raise StageError("trace", f"expected {len(built.schedule.rules)} SaintTokenDrop nodes, found {len(drops)}")
    for node, layer in zip(drops, built.schedule.layers):
        if len(node.outputs) != 2:  # onnxscript creates the schema's optional size output too
            node = with_outputs(ir_model.graph, node, 2)
        node.name = f"saint_drop_block{layer}"
        node.outputs[0].name = f"tokens_block{layer}"
        node.outputs[1].name = f"kept_index_block{layer}"
    return ir_model


def read_metadata(model: ir.Model) -> dict[str, str]:
    return {k[len(META_PREFIX):]: v for k, v in model.metadata_props.items() if k.startswith(META_PREFIX)}
