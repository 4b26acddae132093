"""Graph passes over onnx-ir models. Each declares what it requires and ensures, returns
whether it changed the graph, and fails with a message that names the pass.

Lowerings (one traced graph, two artifacts):

* :class:`LowerPortable`  — attach SaintTokenDrop's model-local function; any runtime runs it.
* :class:`LowerTensorRT`  — plugin nodes for TensorRT's ONNX parser, no function body
  (TensorRT would inline a same-named function instead of using the plugin).

Clean-ups: :class:`InferShapes`, :class:`FoldConstants`, :class:`CheckLowered`.
"""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes import (
    InPlacePass,
    PassError,
    PassResult,
    PostconditionError,
    PreconditionError,
)

from .function import function_proto
from .function_sample import function_proto_per_sample
from .opdef import (
    ATTRIBUTES,
    DOMAIN,
    OP_TYPE,
    PER_SAMPLE,
    PLUGIN_NAMESPACE,
    PLUGIN_VERSION,
    register_schema,
    version_for,
)

PLUGIN_ATTRS = ("plugin_version", "plugin_namespace", "max_tokens")


def drop_nodes(model: ir.Model) -> list[ir.Node]:
    return [n for n in model.graph if n.domain == DOMAIN and n.op_type == OP_TYPE]


def _function_key() -> tuple[str, str, str]:
    return (DOMAIN, OP_TYPE, "")


def per_sample(node: ir.Node) -> bool:
    attr = node.attributes.get(PER_SAMPLE.name)
    return attr is not None and int(attr.value) == 1


def _per_sample_model(pass_name: str, model: ir.Model) -> bool:
    """Whether the model's drop nodes vote per sample; all of them or none (one function body serves all)."""
    modes = {per_sample(n) for n in drop_nodes(model)}
    if len(modes) > 1:
        raise PreconditionError(f"{pass_name}: the model mixes per-sample and batch-vote SaintTokenDrop nodes")
    return modes == {True}


def _check_drop_nodes_any_arity(pass_name: str, model: ir.Model) -> None:
    for node in drop_nodes(model):
        missing = [a.name for a in ATTRIBUTES if a.name not in node.attributes]
        if missing:
            raise PreconditionError(f"{pass_name}: node {node.name} lacks attribute(s) {missing}")
        if per_sample(node):
            if len(node.inputs) != 3 or len(node.outputs) != 3:
                raise PreconditionError(f"{pass_name}: per-sample node {node.name} must have 3 inputs and 3 outputs")
        elif len(node.inputs) != 2 or len(node.outputs) not in (2, 3):
            raise PreconditionError(f"{pass_name}: node {node.name} must have 2 inputs and 2 (or 3) outputs")


def _check_drop_nodes(pass_name: str, model: ir.Model) -> None:
    _check_drop_nodes_any_arity(pass_name, model)
    three = [n.name for n in drop_nodes(model) if len(n.outputs) != 2 and not per_sample(n)]
    if three:
        raise PreconditionError(f"{pass_name}: node(s) {three[:3]} have the TensorRT size output; lower the traced model instead")


class LowerPortable(InPlacePass):
    """Requires: SaintTokenDrop nodes with every attribute, no plugin attributes, opset >= 18.
    Ensures: one model-local function ``saint.SaintTokenDrop`` that every such node resolves to."""

    def requires(self, model: ir.Model) -> None:
        lowered = [n.name for n in drop_nodes(model) if any(a in n.attributes for a in PLUGIN_ATTRS)]
        if lowered:
            raise PreconditionError(f"LowerPortable: node(s) {lowered[:3]} are already lowered for TensorRT")
        _check_drop_nodes("LowerPortable", model)
        if model.opset_imports.get("", 0) < 18:
            raise PreconditionError("LowerPortable: the default opset must be >= 18")

    def call(self, model: ir.Model) -> PassResult:
        if not drop_nodes(model) or _function_key() in model.functions:
            return PassResult(model, modified=False)
        sample = _per_sample_model("LowerPortable", model)
        body = (function_proto_per_sample if sample else function_proto)(model.opset_imports[""])
        model.functions[_function_key()] = ir.serde.deserialize_function(body)
        model.opset_imports[DOMAIN] = version_for(sample)
        return PassResult(model, modified=True)

    def ensures(self, model: ir.Model) -> None:
        if drop_nodes(model) and _function_key() not in model.functions:
            raise PostconditionError("LowerPortable: SaintTokenDrop has no function body")


def fixed_r(node: ir.Node) -> int:
    return int(node.attributes["fixed_r"].value)


def lowered_outputs(node: ir.Node) -> int:
    """Outputs of the plugin node: 4 per sample (mask_out, then the size tensor), 3 for a vote, 2 for fixed_r."""
    return 4 if per_sample(node) else 2 if fixed_r(node) >= 0 else 3


def static_token_count(node: ir.Node) -> int | None:
    """Output token count of a ``fixed_r >= 0`` node whose input token count is static:
    N - min(fixed_r, Na), Na = ceil((N - P) / 2), and N when fewer than 2 tokens are free
    (the plugin's getOutputShapes builds the same expression). None otherwise."""
    shape = node.inputs[0].shape if node.inputs[0] is not None else None
    if fixed_r(node) < 0 or shape is None or len(shape) != 3 or not isinstance(shape[1], int):
        return None
    n, free = shape[1], shape[1] - int(node.attributes["protected"].value)
    return n if free < 2 else n - min(fixed_r(node), (free + 1) // 2)


def _substitute_dim(graph: ir.Graph, old: object, new: int) -> None:
    """Replace the symbolic dim ``old`` by ``new`` in every value's shape."""
    name = getattr(old, "value", None)
    if name is None:
        return
    for node in graph:
        for value in node.outputs:
            if value.shape is not None and any(getattr(d, "value", None) == name for d in value.shape):
                value.shape = ir.Shape([new if getattr(d, "value", None) == name else d for d in value.shape])


def _make_static(graph: ir.Graph, node: ir.Node) -> bool:
    """Give a fixed_r node's outputs (and everything downstream of the token count) static dims."""
    m = static_token_count(node)
    out = node.outputs[0]
    if m is None or out.shape is None or out.shape[1] == m:
        return False
    old = out.shape[1]
    _substitute_dim(graph, old, m)
    for value in node.outputs[:2]:
        if value.shape is not None and value.shape[1] != m:
            value.shape = ir.Shape([value.shape[0], m, *list(value.shape)[2:]])
    return True


class LowerTensorRT(InPlacePass):
    """Requires: SaintTokenDrop nodes with every attribute.
    Ensures: each carries ``plugin_version``/``plugin_namespace`` and ``max_tokens``, an upper bound
    on its input token count N (N where static, else the bound of the drop before it: the plugin's
    size tensor takes constant opt/upper values, since opt must not depend on a size tensor); a vote
    node (``fixed_r = -1``) has a third output, the int32 scalar ``kept_count_block{i}`` (the
    plugin's size tensor, kINT32 as TensorRT requires: the ONNX parser needs one node output per
    plugin output); a ``fixed_r >= 0`` node has exactly two outputs (its plugin has no size tensor:
    M = N - min(fixed_r, Na) is a shape expression) and, where N is static, static token dims on its
    outputs and downstream; no SaintTokenDrop function is attached (TensorRT's parser would inline it
    instead of using the plugin); a per-sample node (version 2) has 3 inputs and 4 outputs: tokens,
    kept_index, mask, and the size tensor (M depends on the mask, fixed_r or not), and takes and
    gives its mask as int32 (``Cast`` nodes around it keep the graph's masks bool: plugins cannot
    have BOOL or UINT8 I/O). Nothing else changes."""

    def requires(self, model: ir.Model) -> None:
        _per_sample_model("LowerTensorRT", model)
        _check_drop_nodes_any_arity("LowerTensorRT", model)

    def call(self, model: ir.Model) -> PassResult:
        modified = False
        if _function_key() in model.functions:
            del model.functions[_function_key()]
            modified = True
        bound = 0
        for node in drop_nodes(model):
            want = lowered_outputs(node)
            if len(node.outputs) != want:
                node = with_outputs(model.graph, node, want)
                modified = True
            if want == 2:
                modified = _make_static(model.graph, node) or modified
            if per_sample(node):
                modified = _int32_masks(model.graph, node) or modified
            for name, value in (("plugin_version", PLUGIN_VERSION), ("plugin_namespace", PLUGIN_NAMESPACE)):
                if node.attributes.get(name) is None or node.attributes[name].value != value:
                    node.attributes[name] = ir.AttrString(name, value)
                    modified = True
            shape = node.inputs[0].shape
            bound = shape[1] if shape is not None and len(shape) == 3 and isinstance(shape[1], int) else bound
            if bound < 1:
                raise PassError(f"LowerTensorRT: node {node.name}: no static token count before it to bound N")
            if node.attributes.get("max_tokens") is None or node.attributes["max_tokens"].value != bound:
                node.attributes["max_tokens"] = ir.AttrInt64("max_tokens", bound)
                modified = True
        return PassResult(model, modified=modified)

    def ensures(self, model: ir.Model) -> None:
        if _function_key() in model.functions:
            raise PostconditionError("LowerTensorRT: a SaintTokenDrop function body is still attached")
        bad = [n.name for n in drop_nodes(model) if any(a not in n.attributes for a in PLUGIN_ATTRS)
               or len(n.outputs) != lowered_outputs(n)]
        if bad:
            raise PostconditionError(f"LowerTensorRT: node(s) {bad[:3]} lack plugin attributes or the size output "
                                     "(vote nodes) or have one (fixed_r nodes)")


def with_outputs(graph: ir.Graph, node: ir.Node, count: int) -> ir.Node:
    """Replace a SaintTokenDrop node by the same node with its first ``count`` outputs; an output
    added at the end is the int64 scalar size tensor ``kept_count_<block>``; dropped outputs must be unused."""
    new = ir.Node(node.domain, node.op_type, list(node.inputs), attributes=list(node.attributes.values()),
                  num_outputs=count, name=node.name)
    for old_out, new_out in zip(node.outputs, new.outputs):
        new_out.type, new_out.shape = old_out.type, old_out.shape
    if count == len(node.outputs) + 1:
        tag = node.name.removeprefix("saint_drop_") if node.name else f"node{id(node)}"
        new.outputs[-1].name = f"kept_count_{tag}"
        new.outputs[-1].type = ir.TensorType(ir.DataType.INT32)
        new.outputs[-1].shape = ir.Shape([])
    graph.insert_after(node, new)
    for i, old_out in enumerate(node.outputs):
        if i >= count:
            if old_out.uses() or old_out.is_graph_output():
                raise PassError(f"output {old_out.name} of {node.name} is in use; cannot drop it")
            continue
        name = old_out.name
        old_out.replace_all_uses_with(new.outputs[i])
        if old_out.is_graph_output():
            graph.outputs[graph.outputs.index(old_out)] = new.outputs[i]
        old_out.name = None
        new.outputs[i].name = name
    graph.remove(node, safe=True)
    return new


def _int32_masks(graph: ir.Graph, node: ir.Node) -> bool:
    """Cast a per-sample node's bool mask to int32 on the way in and its int32 mask_out back to bool."""
    mask, mask_out = node.inputs[2], node.outputs[2]
    if mask is None or mask.dtype == ir.DataType.INT32:
        return False
    to_int = ir.node("Cast", [mask], {"to": ir.DataType.INT32}, name=f"{node.name}_mask_to_int32")
    to_int.outputs[0].name = f"{node.name}_mask_int32"
    to_int.outputs[0].dtype, to_int.outputs[0].shape = ir.DataType.INT32, mask.shape
    graph.insert_before(node, to_int)
    node.replace_input_with(2, to_int.outputs[0])
    users, name, was_output = list(mask_out.uses()), mask_out.name, mask_out.is_graph_output()
    mask_out.name = f"{name}_int32"
    to_bool = ir.node("Cast", [mask_out], {"to": ir.DataType.BOOL}, name=f"{node.name}_mask_to_bool")
    to_bool.outputs[0].name = name
    to_bool.outputs[0].dtype, to_bool.outputs[0].shape = ir.DataType.BOOL, mask_out.shape
    mask_out.dtype = ir.DataType.INT32
    graph.insert_after(node, to_bool)
    for user, index in users:
        user.replace_input_with(index, to_bool.outputs[0])
    if was_output:
        graph.outputs[graph.outputs.index(mask_out)] = to_bool.outputs[0]
    return True


class CheckLowered(InPlacePass):
    """Requires nothing. Ensures every node is a standard op, a model-local function call, or a
    TensorRT plugin node; fails naming the first unlowered op otherwise. Never modifies."""

    def call(self, model: ir.Model) -> PassResult:
        return PassResult(model, modified=False)

    def ensures(self, model: ir.Model) -> None:
        functions = {(d, n) for d, n, _ in model.functions}
        for node in model.graph.all_nodes():
            if node.domain in ("", "ai.onnx", "ai.onnx.ml") or (node.domain, node.op_type) in functions:
                continue
            if all(a in node.attributes for a in PLUGIN_ATTRS):
                continue
            raise PostconditionError(f"CheckLowered: op {node.domain}.{node.op_type} (node {node.name}) is not lowered; "
                                     "run LowerPortable or LowerTensorRT first")


class InferShapes(InPlacePass):
    """Requires: the SaintTokenDrop schema is registered (done here).
    Ensures: onnx shape inference ran; symbolic token dims from the exporter are kept."""

    def call(self, model: ir.Model) -> PassResult:
        register_schema()
        from onnx_ir.passes.common import ShapeInferencePass

        return ShapeInferencePass()(model)


class FoldConstants(InPlacePass):
    """Requires nothing. Ensures constant subgraphs are folded into initializers and
    unused nodes are removed (onnxscript's folder); SaintTokenDrop is never folded."""

    def call(self, model: ir.Model) -> PassResult:
        import onnxscript.optimizer
        from onnx_ir.passes.common import RemoveUnusedNodesPass

        folded = onnxscript.optimizer.fold_constants(model)
        removed = RemoveUnusedNodesPass()(model)
        return PassResult(model, modified=folded.modified or removed.modified)


def cleanup() -> list[InPlacePass]:
    return [FoldConstants(), InferShapes()]
