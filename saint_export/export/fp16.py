"""Pass ``ConvertFloat16``: run the model in float16, keep its interface in float32."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes import (
    InPlacePass,
    PassResult,
    PostconditionError,
    PreconditionError,
)

FLOAT, FLOAT16 = ir.DataType.FLOAT, ir.DataType.FLOAT16


def _to_fp16(tensor) -> ir.Tensor:
    return ir.tensor(np.asarray(tensor.numpy(), dtype=np.float32).astype(np.float16), name=tensor.name)


class ConvertFloat16(InPlacePass):
    """Requires: float32 graph inputs and outputs, no float16 value yet.
    Ensures: every float32 weight, constant and activation is float16; ``Cast`` nodes at the
    graph inputs and outputs keep the interface float32. SaintTokenDrop nodes then get float16
    tokens and metric; the op casts the metric to float32 before the similarity (its function
    body and the TensorRT plugin both do), so the threshold test stays float32."""

    def requires(self, model: ir.Model) -> None:
        if any(v.dtype == FLOAT16 for v in model.graph.initializers.values()):
            raise PreconditionError("ConvertFloat16: the model already holds float16 weights")
        for v in [*model.graph.inputs, *model.graph.outputs]:
            if v.dtype != FLOAT:
                raise PreconditionError(f"ConvertFloat16: graph input/output {v.name} is {v.dtype}, expected FLOAT")

    def call(self, model: ir.Model) -> PassResult:
        graph = model.graph
        for value in graph.initializers.values():
            if value.dtype == FLOAT and value.const_value is not None:
                value.const_value = _to_fp16(value.const_value)
                value.dtype = FLOAT16
        for node in list(graph):
            if node.op_type == "Constant" and node.domain == "" and "value" in node.attributes:
                t = node.attributes["value"].value
                if t.dtype == FLOAT:
                    node.attributes["value"] = ir.AttrTensor("value", _to_fp16(t))
            elif node.op_type == "ConstantOfShape" and "value" in node.attributes:
                t = node.attributes["value"].value
                if t.dtype == FLOAT:
                    node.attributes["value"] = ir.AttrTensor("value", _to_fp16(t))
            elif node.op_type == "Cast" and node.attributes["to"].value == FLOAT:
                node.attributes["to"] = ir.AttrInt64("to", FLOAT16)
            for out in node.outputs:
                if out.dtype == FLOAT:
                    out.dtype = FLOAT16
        for inp in graph.inputs:
            users = list(inp.uses())
            cast = ir.node("Cast", [inp], {"to": FLOAT16}, name=f"{inp.name}_to_fp16")
            cast.outputs[0].name = f"{inp.name}_fp16"
            cast.outputs[0].dtype = FLOAT16
            cast.outputs[0].shape = inp.shape
            for user, index in users:
                user.replace_input_with(index, cast.outputs[0])
            graph.insert_before(graph.node(0), cast)
        for i, out in enumerate(list(graph.outputs)):
            name = out.name
            out.name = f"{name}_fp16"
            cast = ir.node("Cast", [out], {"to": FLOAT}, name=f"{name}_to_fp32")
            cast.outputs[0].name = name
            cast.outputs[0].dtype = FLOAT
            cast.outputs[0].shape = out.shape
            graph.append(cast)
            graph.outputs[i] = cast.outputs[0]
        return PassResult(model, modified=True)

    def ensures(self, model: ir.Model) -> None:
        left = [v.name for v in model.graph.initializers.values() if v.dtype == FLOAT]
        if left:
            raise PostconditionError(f"ConvertFloat16: float32 initializers remain: {left[:3]}")
