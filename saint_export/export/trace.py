"""Stage ``onnx_from_torch``: trace the SAINT-patched model with the dynamo ONNX exporter.

Each pruning block becomes one ``saint.SaintTokenDrop`` node (no body yet; see the
lowering passes). Batch is a dynamic axis named ``batch``; the token count after
every pruning node is a fresh symbolic dim, so one file serves every drop count.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import onnx_ir as ir
import torch

from ..errors import StageError
from ..models.build import BuiltModel
from ..models.record import ModelRecord
from ..reference.patch import pruning
from .opdef import DOMAIN, translation_table, version_for
from .passes import drop_nodes, with_outputs

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"


def onnx_from_torch(built: BuiltModel, batch: int = 2, opset: int = 18, pruned: bool = True) -> ir.Model:
    """Export ``built.module`` (SAINT on, or dense with ``pruned=False``) to an ONNX IR model whose
    metadata holds its :class:`ModelRecord`."""
    with pruning(built.module, pruned):
        ir_model = traced(built.module, built.config.input_size, (OUTPUT_NAME,), built.config.alias, batch, opset)
    if pruned and built.schedule.rules:
        ir_model.opset_imports[DOMAIN] = version_for(built.schedule.per_sample)
    ir_model.metadata_props.update(ModelRecord.of(built, pruned).to_metadata())
    ir_model.graph.name = f"{built.config.alias}_{'saint' if pruned else 'dense'}"
    if pruned:
        name_drop_nodes(ir_model, built.schedule.layers, built.schedule.per_sample)
    return ir_model


def traced(module: torch.nn.Module, size: int, outputs: tuple[str, ...], what: str, batch: int = 2,
           opset: int = 18) -> ir.Model:
    """``module`` (``pixels`` [batch, 3, size, size] -> ``outputs``) through the dynamo ONNX exporter,
    batch a dynamic axis, ``saint::`` ops as SaintTokenDrop nodes; failures are StageError("trace")."""
    if opset < 18:
        raise StageError("trace", f"opset {opset} is too old; SaintTokenDrop's function needs opset >= 18")
    example = torch.zeros(batch, 3, size, size)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module, (example,), dynamo=True, opset_version=opset, input_names=[INPUT_NAME], output_names=list(outputs),
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
                custom_translation_table=translation_table(), verbose=False, report=False,
            )
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StageError("trace", f"torch.onnx.export failed for {what}: {first[:300]}") from exc
    return program.model


def name_drop_nodes(ir_model: ir.Model, layers: list[int], per_sample: bool = False) -> None:
    """Give the traced SaintTokenDrop nodes (one per pruning layer, in order) their names and their
    schema's outputs only (onnxscript creates the optional size output too)."""
    drops = drop_nodes(ir_model)
    if len(drops) != len(layers):
        raise StageError("trace", f"expected {len(layers)} SaintTokenDrop nodes, found {len(drops)}")
    want = 3 if per_sample else 2
    for node, layer in zip(drops, layers):
        if len(node.outputs) != want:
            node = with_outputs(ir_model.graph, node, want)
        node.name = f"saint_drop_block{layer}"
        for value, name in zip(node.outputs, ("tokens", "kept_index", "mask")):
            value.name = f"{name}_block{layer}"

