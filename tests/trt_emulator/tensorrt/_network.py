"""The network definition and the ONNX parser (onnx-tensorrt's plugin importer)."""

from __future__ import annotations

import builtins as _builtins
from pathlib import Path

import onnx

from . import _native, _program
from ._core import Dims, _drain_native_log
from ._enums import DataType, LayerType, NetworkDefinitionCreationFlag, TensorLocation, TensorRTPhase
from ._plugins import IPluginV3
from ._profile import V11 as _V11


class _HasIO:
    """num_inputs / num_outputs / get_input / get_output over ``_inputs`` / ``_outputs`` (layers and networks)."""

    __slots__ = ()

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int):
        return self._inputs[index]

    def get_output(self, index: int):
        return self._outputs[index]


class ITensor:
    __slots__ = ("_name", "_dtype", "_shape", "_input", "_output")

    def __new__(cls, *args, **kwargs):
        raise TypeError("tensors come from a network")

    @classmethod
    def _make(cls, name: str, dtype, shape, is_input: bool = False):
        t = object.__new__(cls)
        t._name, t._dtype, t._shape, t._input, t._output = name, dtype, Dims(shape), is_input, False
        return t

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)

    @property
    def dtype(self):
        return self._dtype

    @property
    def shape(self):
        return self._shape

    @property
    def is_shape_tensor(self) -> bool:
        return False

    @property
    def is_network_input(self) -> bool:
        return self._input

    @property
    def is_network_output(self) -> bool:
        return self._output

    @property
    def location(self):
        return TensorLocation.DEVICE


class ILayer(_HasIO):
    __slots__ = ("_name", "_type", "_inputs", "_outputs")

    def __new__(cls, *args, **kwargs):
        raise TypeError("layers come from a network")

    @classmethod
    def _make(cls, name, layer_type, inputs, outputs):
        layer = object.__new__(cls)
        layer._name, layer._type, layer._inputs, layer._outputs = name, layer_type, inputs, outputs
        return layer

    @property
    def name(self) -> str:
        return self._name

    @property
    def type(self):
        return self._type

    def get_output_type(self, index: int):
        return self._outputs[index].dtype

    if not _V11:  # weak typing: removed in TensorRT 11 (pyGraph.cpp)
        @property
        def precision(self):
            return DataType.FLOAT

        @property
        def precision_is_set(self) -> bool:
            return False


class IPluginV3Layer(ILayer):
    __slots__ = ("_plugin",)

    @property
    def plugin(self):
        return self._plugin


class INetworkDefinition(_HasIO):
    __slots__ = ("_flags", "_model", "_tensors", "_layers", "_inputs", "_outputs", "_plugins", "_api_plugins", "_name",
                 "_path", "__weakref__")

    def __new__(cls, *args, **kwargs):
        raise TypeError("use Builder.create_network()")

    @classmethod
    def _make(cls, flags: int):
        net = object.__new__(cls)
        net._flags, net._model, net._tensors, net._layers = flags, None, {}, []
        net._inputs, net._outputs, net._plugins, net._api_plugins, net._name, net._path = [], [], [], [], "", None
        return net

    @property
    def name(self) -> str:
        return self._name

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_layer(self, index: int):
        return self._layers[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int):
        return self._layers[index]

    @property
    def flags(self) -> int:
        return self._flags

    def get_flag(self, flag) -> bool:
        if _V11 and flag == NetworkDefinitionCreationFlag.STRONGLY_TYPED:
            return True  # "Strongly typed mode is always enabled" (NvInfer.h 11)
        return _builtins.bool(self._flags & (1 << int(flag)))

    @property
    def has_implicit_batch_dimension(self) -> bool:
        return False

    def add_input(self, name: str, dtype, shape):
        t = ITensor._make(name, dtype, shape, is_input=True)
        self._tensors[name] = t
        self._inputs.append(t)
        return t

    def mark_output(self, tensor) -> None:
        tensor._output = True
        self._outputs.append(tensor)

    def unmark_output(self, tensor) -> None:
        tensor._output = False
        self._outputs.remove(tensor)

    def add_plugin_v3(self, inputs, shape_inputs, plugin):
        """A plugin layer: outputs typed and shaped by the plugin's getOutputDataTypes/getOutputShapes."""
        if shape_inputs:
            raise TypeError("shape inputs are not emulated")
        node = _program.PluginNode(index=len(self._api_plugins), name=f"plugin_{len(self._api_plugins)}", key=("", "", ""),
                                   inputs=[t.name for t in inputs], outputs=[], handle=plugin._handle)
        info = _native.answer(_native.lib().emu_plugin_info(plugin._handle))
        node.key = (info["name"], info["version"], info["namespace"])
        specs = [(t.dtype.name, [d if d >= 0 else f"{t.name}:{k}" for k, d in enumerate(t.shape)]) for t in inputs]
        symbols = {n: _program.Symbol(1, 1, 1) for _, dims in specs for n in dims if isinstance(n, str)}
        result = _program.plugin_build(node, specs, symbols)
        outs = []
        for i, ((rank, exprs), t) in enumerate(zip(result["outputs"], result["out_types"])):
            shape = [e if isinstance(e, int) else -1 for e in exprs]
            outs.append(ITensor._make(f"{node.name}_output_{i}", DataType(t), shape))
        node.outputs = [o.name for o in outs]
        layer = IPluginV3Layer._make(node.name, LayerType.PLUGIN_V3, list(inputs), outs)
        layer._plugin = plugin
        self._layers.append(layer)
        self._api_plugins.append((node, list(inputs), outs))
        return layer


class ParserError:
    __slots__ = ("_desc", "_node")

    def __new__(cls, *args, **kwargs):
        raise TypeError("parser errors come from the parser")

    @classmethod
    def _make(cls, desc: str, node: int = -1):
        e = object.__new__(cls)
        e._desc, e._node = desc, node
        return e

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def __str__(self) -> str:
        return f"In node {self._node}: {self._desc}"

    __repr__ = __str__


class OnnxParser:
    """onnx-tensorrt's behaviour for plugin nodes: an op of an unknown domain is imported as the plugin
    whose creator (op_type, plugin_version, plugin_namespace) is registered, with the node's
    attributes that the creator lists in getFieldNames; a missing creator is a parse error."""

    __slots__ = ("_network", "_logger", "_errors", "_flags")

    def __init__(self, network, logger) -> None:
        self._network, self._logger, self._errors, self._flags = network, logger, [], 1  # NATIVE_INSTANCENORM on

    @property
    def flags(self) -> int:
        return self._flags

    @flags.setter
    def flags(self, value: int) -> None:
        self._flags = int(value)

    def set_flag(self, flag) -> None:
        self._flags |= 1 << int(flag)

    def clear_flag(self, flag) -> None:
        self._flags &= ~(1 << int(flag))

    def get_flag(self, flag) -> bool:
        return _builtins.bool(self._flags & (1 << int(flag)))

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int):
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def parse_from_file(self, model: str) -> bool:
        try:
            proto = onnx.load(str(model))
        except Exception as exc:
            self._errors.append(ParserError._make(f"cannot read {model}: {exc}"))
            return False
        return self._parse(proto, str(model))

    def parse(self, model, path: str | None = None) -> bool:
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(bytes(model))
        except Exception as exc:
            self._errors.append(ParserError._make(f"cannot parse the model: {exc}"))
            return False
        if path:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(proto, str(Path(path).parent))
        return self._parse(proto, path)

    def _parse(self, proto: onnx.ModelProto, path) -> bool:
        net = self._network
        start = _native.lib().emu_log_count()
        std_domains = {"", "ai.onnx"}
        local = {(f.domain, f.name) for f in proto.functions}
        shapes = _program.shapes_of(proto)
        net._model, net._path = proto, path
        for v in proto.graph.input:
            dtype, dims = shapes[v.name]
            net.add_input(v.name, DataType.__members__[dtype], [d if isinstance(d, int) and d > 0 else -1 for d in dims])
        ok = True
        for i, node in enumerate(proto.graph.node):
            outs = []
            for o in node.output:
                dtype, dims = shapes.get(o, ("FLOAT", []))
                t = ITensor._make(o, DataType.__members__.get(dtype, DataType.FLOAT),
                                  [d if isinstance(d, int) else -1 for d in dims if d is not None])
                net._tensors[o] = t
                outs.append(t)
            ins = [net._tensors.get(x) for x in node.input if x]
            if node.domain in std_domains or (node.domain, node.op_type) in local:
                net._layers.append(ILayer._make(node.name, LayerType.IDENTITY, ins, outs))  # standard ops: not modelled
                continue
            version = next((a.s.decode() for a in node.attribute if a.name == "plugin_version"), "1")
            namespace = next((a.s.decode() for a in node.attribute if a.name == "plugin_namespace"), "")
            creator = _native.lib().emu_get_creator(node.op_type.encode(), version.encode(), namespace.encode())
            if not creator:
                self._errors.append(ParserError._make(
                    f"No importer registered for op: {node.op_type}. Attempted to import as plugin: plugin creator "
                    f"{node.op_type} (version {version}, namespace '{namespace}') not found", i))
                ok = False
                continue
            info = _native.answer(_native.lib().emu_creator_info(creator))
            fields = _program.onnx_attribute_fields(node, {n: t for n, t, _ in info["fields"]})
            handle = _program.create_plugin(creator, node.name, fields, TensorRTPhase.BUILD.value)
            if not handle:
                _drain_native_log(self._logger, start)
                self._errors.append(ParserError._make(f"creator {node.op_type} could not create the plugin for {node.name}", i))
                ok = False
                continue
            pnode = _program.PluginNode(index=i, name=node.name, key=(node.op_type, version, namespace),
                                        inputs=list(node.input), outputs=list(node.output), handle=handle)
            net._plugins.append(pnode)
            layer = IPluginV3Layer._make(node.name, LayerType.PLUGIN_V3, ins, outs)
            layer._plugin = IPluginV3._wrap(handle)
            net._layers.append(layer)
        for o in proto.graph.output:
            net.mark_output(net._tensors[o.name])
        _drain_native_log(self._logger, start)
        return ok
