"""Test scaffolding: one SaintTokenDrop plugin in a network of its own, built and run through Polygraphy."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from saint_export.errors import MissingDependencyError, StageError
from saint_export.export.opdef import ATTRIBUTES
from saint_export.reference.schedule import LayerRule
from saint_export.tensorrt.engine import polygraphy_trt, require_tensorrt
from saint_export.tensorrt.plugins import load_plugin_library, require_plugin_library


def single_plugin_network(shapes: dict[str, tuple[int, ...]], fields: dict[str, tuple[Any, str]]) -> Callable[[], Any]:
    """A callable giving (builder, network) with one SaintTokenDrop layer over float32 inputs
    ``tokens``/``metric`` of ``shapes``; ``fields``: name -> (value, "float" | "int")."""
    def network():
        import tensorrt as trt

        builder, net = polygraphy_trt().CreateNetwork()()
        creator = trt.get_plugin_registry().get_creator("SaintTokenDrop", "1", "saint")
        if creator is None:
            raise MissingDependencyError("the SaintTokenDrop creator is not registered: load libsaint_plugins.so first")
        collection = trt.PluginFieldCollection([
            trt.PluginField(name, np.array([value], np.float32 if kind == "float" else np.int32),
                            trt.PluginFieldType.FLOAT32 if kind == "float" else trt.PluginFieldType.INT32)
            for name, (value, kind) in fields.items()])
        plugin = creator.create_plugin("saint_token_drop", collection, trt.TensorRTPhase.BUILD)
        if plugin is None:
            raise StageError("engine", f"the SaintTokenDrop creator refused the fields {sorted(fields)}")
        inputs = [net.add_input(name, trt.float32, shape) for name, shape in shapes.items()]
        layer = net.add_plugin_v3(inputs, [], plugin)
        for i, name in enumerate(("tokens_out", "kept_index")):
            layer.get_output(i).name = name
            net.mark_output(layer.get_output(i))
        return builder, net
    return network


def run_single_plugin(tokens, metric, rule: LayerRule, protected: int):
    """Build a one-plugin network with Polygraphy, run it with its TrtRunner: (tokens_out, kept_index) as torch tensors."""
    import torch  # noqa: PLC0415

    require_tensorrt()
    load_plugin_library(require_plugin_library())
    poly = polygraphy_trt()
    values = {"threshold": rule.threshold, "k": rule.k, "gamma": rule.gamma, "protected": protected, "fixed_r": rule.fixed_r}
    fields = {a.name: (values[a.name], a.kind) for a in ATTRIBUTES}
    network = single_plugin_network({"tokens": tuple(tokens.shape), "metric": tuple(metric.shape)}, fields)
    with poly.TrtRunner(poly.EngineFromNetwork(network)) as runner:
        out = runner.infer({"tokens": tokens.float().numpy(), "metric": metric.float().numpy()})
    return torch.as_tensor(np.asarray(out["tokens_out"])), torch.as_tensor(np.asarray(out["kept_index"]))
