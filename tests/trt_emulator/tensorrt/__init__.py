"""An emulated TensorRT Python API for tests, importable as ``tensorrt`` (put tests/trt_emulator
on PYTHONPATH; set SAINT_TRT_EMULATOR_LIBDIR to the emulated/ folder of a CPU build of plugins/).

Its surface is a subset of the real bindings' (tests/test_trt_emulator.py checks every public name
against tensorrt-stubs==10.13.0.35.1, and profile 11 against TensorRT 11's removals): what a real
TensorRT would refuse with AttributeError is refused here too, so Polygraphy's real loaders and
TrtRunner take the paths they would take on a GPU. Plugins are real: the registry is the stand-in
libnvinfer's (plugins/tests/trtEmulator.cpp), plugin layers are created through the library's
creator and built through its build-phase methods, with the header contracts checked, and run by its
enqueue with the kernels on the CPU runtime. Standard ops run in onnxruntime. Device memory is host
memory (Polygraphy's CUDA calls go to the emulated libcudart.so). This is a test double for
saint-export's engine path, not TensorRT: it has no optimizer, no tactics, and no GPU.
"""

# ruff: noqa: F401 (the package re-exports the API)
from . import _native
from ._builder import Builder, IBuilderConfig, IOptimizationProfile, ITimingCache
from ._core import Dims, IHostMemory, ILogger, Logger
from ._enums import (BuilderFlag, DataType, DeviceType, EngineCapability, ExecutionContextAllocationStrategy, LayerType,
                     MemoryPoolType, NetworkDefinitionCreationFlag, OnnxParserFlag, PluginFieldType, PreviewFeature,
                     ProfilingVerbosity, TacticSource, TensorFormat, TensorIOMode, TensorLocation, TensorRTPhase)
from ._network import ILayer, INetworkDefinition, IPluginV3Layer, ITensor, OnnxParser, ParserError
from ._plugins import (IPluginCreatorV3One, IPluginRegistry, IPluginV3, PluginField, PluginFieldCollection,
                       PluginFieldCollection_, get_plugin_registry, init_libnvinfer_plugins)
from ._profile import VERSION as _VERSION
from ._runtime import ICudaEngine, IDebugListener, IExecutionContext, IOutputAllocator, Runtime

__version__ = _VERSION
_native.lib()  # as the wheel does: importing tensorrt loads libnvinfer.so.<major> (RTLD_LOCAL)

float32, float16, bfloat16 = DataType.FLOAT, DataType.HALF, DataType.BF16
int8, int32, int64, uint8 = DataType.INT8, DataType.INT32, DataType.INT64, DataType.UINT8
bool = DataType.BOOL  # noqa: A001 (the bindings' name)
fp8, int4, fp4, e8m0 = DataType.FP8, DataType.INT4, DataType.FP4, DataType.E8M0
