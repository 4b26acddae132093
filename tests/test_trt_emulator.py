"""The emulated TensorRT is held to the real API: every name it defines exists in the real 10.13
bindings (tensorrt-stubs==10.13.0.35.1) with the same enum values; profile 11 has TensorRT 11's
removals and renumbering (11.1 headers, pyCore.cpp); what the bindings lack is refused
(IHostMemory.serialize, which Polygraphy's SaveEngine calls); and its plugin registry and builder
enforce what the headers say (BOOL plugin I/O, size tensors, loadLibrary's lock)."""

import json
import os
import sys

import pytest

import emulated_trt as emu

# TensorRT 11 (NvInfer.h 11.1; python/src/infer/pyCore.cpp at 11.1): removed, and renumbered
REMOVED_11 = {
    "BuilderFlag": {"FP16", "BF16", "INT8", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS",
                    "REJECT_EMPTY_ALGORITHMS", "WEIGHTLESS"},
    "NetworkDefinitionCreationFlag": {"EXPLICIT_BATCH"},
    "Builder": {"platform_has_fast_fp16", "platform_has_tf32", "platform_has_fast_int8"},
    "IBuilderConfig": {"int8_calibrator"},
    "ICudaEngine": {"device_memory_size", "get_device_memory_size_for_profile"},
    "ILayer": {"precision", "precision_is_set"},
    "TacticSource": {"CUBLAS", "CUBLAS_LT", "CUDNN"},
    "PreviewFeature": {"PROFILE_SHARING_0806"},
}
VALUES_11 = {
    "BuilderFlag": {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6, "SPARSE_WEIGHTS": 7,
                    "SAFETY_SCOPE": 8, "DIRECT_IO": 11, "VERSION_COMPATIBLE": 12, "EXCLUDE_LEAN_RUNTIME": 13,
                    "ERROR_ON_TIMING_CACHE_MISS": 15, "DISABLE_COMPILATION_CACHE": 17, "STRIP_PLAN": 18, "REFIT_IDENTICAL": 19,
                    "WEIGHT_STREAMING": 20, "REFIT_INDIVIDUAL": 22, "STRICT_NANS": 23, "MONITOR_MEMORY": 24,
                    "EDITABLE_TIMING_CACHE": 26, "DISTRIBUTIVE_INDEPENDENCE": 27},
    "NetworkDefinitionCreationFlag": {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2},
}
ADDED_11 = {("ICudaEngine", "get_aliased_input_tensor")}  # pyCore.cpp 11.1; absent from the 10.13 bindings
MECHANISM = {("IHostMemory", "__getattribute__")}  # hides bytes' own methods, so only dtype/nbytes/buffer remain


@pytest.fixture(scope="module")
def stubs():
    path = emu.stubs_path()
    if path is None:
        pytest.skip("tensorrt-stubs not fetched: run tools/get_trt_stubs.sh or set SAINT_TRT_STUBS")
    return emu.stub_surface(path)


def surface(emulated, profile):
    res = emu.python(emu.SURFACE, emu.env(emulated, profile))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("profile", [10, 11])
def test_every_emulated_name_is_in_the_real_bindings(emulated, stubs, profile):
    classes, enums, module = stubs
    got = surface(emulated, profile)
    assert got["version"].startswith(f"{profile}.")
    assert [n for n in got["module"] if n not in module] == []
    extra = {(k, m) for k, members in got["classes"].items() for m in members if m not in classes.get(k, set())}
    assert extra - MECHANISM - (ADDED_11 if profile == 11 else set()) == set()
    for name, values in got["enums"].items():
        want = {**enums.get(name, {}), **(VALUES_11.get(name, {}) if profile == 11 else {})}
        assert {k: v for k, v in values.items() if want.get(k) != v} == {}, name
    if profile == 11:
        for name, gone in REMOVED_11.items():
            have = set(got["classes"][name]) | set(got["enums"].get(name, {}))
            assert have & gone == set(), name
        assert set(got["enums"]["BuilderFlag"]) == set(VALUES_11["BuilderFlag"])
    else:  # the 10 profile keeps what 11 removes: the same code must see both
        assert {"FP16", "BF16"} <= set(got["enums"]["BuilderFlag"])
        assert "EXPLICIT_BATCH" in got["enums"]["NetworkDefinitionCreationFlag"]


STRICT = """
import tensorrt as trt
mem = trt.IHostMemory(b"abc")
print(bytes(memoryview(mem)) == b"abc", mem.nbytes)
for probe in ("mem.serialize()", "mem.decode()", "trt.ITensor()", "trt.Builder(trt.Logger()).create_builder_config().no_such = 1"):
    try:
        exec(probe)
        print("accepted", probe)
    except (AttributeError, TypeError) as exc:
        print("refused", type(exc).__name__)
"""


def test_what_the_bindings_lack_is_refused(emulated):
    """IHostMemory has only dtype, nbytes and the buffer (pyFoundationalTypes.cpp): no serialize."""
    res = emu.python(STRICT, emu.env(emulated))
    lines = res.stdout.split("\n")
    assert res.returncode == 0 and lines[0] == "True 3", res.stdout + res.stderr
    assert lines[1:5] == ["refused AttributeError", "refused AttributeError", "refused TypeError", "refused AttributeError"]


SAVE = """
import sys
from pathlib import Path
from saint_export.tensorrt.engine import EngineOptions, engine_loaders
from polygraphy.backend.trt import SaveEngine
from polygraphy.backend.common import SaveBytes
import tensorrt as trt
trt.get_plugin_registry().load_library(sys.argv[2])
loaders = engine_loaders(Path(sys.argv[1]), EngineOptions(batch=(1, 2, 4)), None, (3, 224, 224))
try:
    SaveEngine(loaders.engine_bytes, sys.argv[3] + ".old")()   # what engine.py did: IHostMemory has no serialize()
    print("SaveEngine saved")
except Exception as exc:
    print("SaveEngine failed:", type(exc).__name__, exc)
SaveBytes(loaders.engine_bytes, sys.argv[3])()
print("SaveBytes saved", Path(sys.argv[3]).stat().st_size > 0)
"""


def test_saving_the_built_bytes_with_save_engine_fails_like_the_real_bindings(emulated, tiny_lowered, tmp_path):
    """Defect 1: Polygraphy's SaveEngine calls engine.serialize() on the IHostMemory."""
    res = emu.python(SAVE, emu.env(emulated), tiny_lowered["vote"], emulated / "10/libsaint_plugins.so", tmp_path / "m.plan")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "SaveEngine failed: AttributeError" in res.stdout and "serialize" in res.stdout
    assert "SaveBytes saved True" in res.stdout


REGISTRY = """
import ctypes, sys
import tensorrt as trt
from tensorrt import _native
lib = _native.lib()
step = sys.argv[1]
if step == "cdll-onload":
    ctypes.CDLL(sys.argv[2])                 # polygraphy --plugins, after TensorRT is imported
elif step == "load_library":
    print("handle", trt.get_plugin_registry().load_library(sys.argv[2]) is not None)
elif step == "load_library-onload":
    print("handle", trt.get_plugin_registry().load_library(sys.argv[2]) is not None)
creator = trt.get_plugin_registry().get_creator("SaintTokenDrop", "1", "saint")
print("registered", creator is not None, "reentrant", lib.emu_registry_reentrant_calls())
print("log", _native.log_messages())
"""


@pytest.mark.parametrize("profile", [10, 11])
def test_each_library_registers_through_its_own_loader_only(emulated, profile):
    """Defects 2 and 9: the registry library registers through loadLibrary with no registry call from
    inside it; the on-load library registers when dlopened after TensorRT, finds libnvinfer.so.<major>
    by soname though it is loaded RTLD_LOCAL, and is refused by loadLibrary (no getCreators)."""
    env = emu.env(emulated, profile)
    folder = emulated / str(profile)
    res = emu.python(REGISTRY, env, "load_library", folder / "libsaint_plugins.so")
    assert "handle True" in res.stdout and "registered True reentrant 0" in res.stdout, res.stdout + res.stderr
    res = emu.python(REGISTRY, env, "cdll-onload", folder / "libsaint_plugins_onload.so")
    assert "registered True reentrant 0" in res.stdout, res.stdout + res.stderr
    res = emu.python(REGISTRY, env, "load_library-onload", folder / "libsaint_plugins_onload.so")
    assert "handle False" in res.stdout and "registered False" in res.stdout and "no getCreators" in res.stdout


def test_a_library_built_for_another_major_registers_nothing(emulated):
    """A 10-built on-load library in a TensorRT 11 process says so instead of calling through a vtable
    that changed (ILoggerFinder and IPluginRegistry differ in 11)."""
    res = emu.python(REGISTRY, emu.env(emulated, 11), "cdll-onload", emulated / "10/libsaint_plugins_onload.so")
    assert "registered False" in res.stdout and "built for TensorRT 10" in res.stdout + res.stderr, res.stdout + res.stderr


# the plugin as it was before the fixes, one defect at a time: the emulated builder must refuse each
PLUGIN_MUTANTS = {
    "size tensor int64 (defect 11)": (
        "outputTypes[i] = i == 1 ? DataType::kINT64 : DataType::kINT32; // kept_index; mask_out, kept_count",
        "outputTypes[i] = i == 1 || i == nbOutputs - 1 ? DataType::kINT64 : DataType::kINT32;",
        "vote", "is not kINT32"),
    "bool mask_out (defect 5)": (
        "outputTypes[i] = i == 1 ? DataType::kINT64 : DataType::kINT32; // kept_index; mask_out, kept_count",
        "outputTypes[i] = i == 1 ? DataType::kINT64 : mAttrs.perSample && i == 2 ? DataType::kBOOL : DataType::kINT32;",
        "sample", "kBOOL"),
    "opt = N, a size tensor after the first vote (defect 6)": (
        "m = c != nullptr ? eb.declareSizeTensor(outputIndex, *c, *c) : nullptr;",
        "m = c != nullptr ? eb.declareSizeTensor(outputIndex, *n, *c) : nullptr;",
        "vote", "depends on a size tensor"),
}

MUTANT_BUILD = """
import sys
from pathlib import Path
from saint_export.tensorrt.engine import EngineOptions, engine_from_onnx
from saint_export.errors import SaintExportError
try:
    engine_from_onnx(Path(sys.argv[1]), Path(sys.argv[2]), EngineOptions(batch=(1, 2, 4)))
    print("built")
except SaintExportError as exc:
    print("refused:", exc)
"""


@pytest.mark.parametrize("mutant", list(PLUGIN_MUTANTS))
def test_the_emulated_builder_refuses_the_old_plugin_defects(emulated, tiny_lowered, tmp_path, mutant):
    import shutil

    old, new, model, expect = PLUGIN_MUTANTS[mutant]
    src = tmp_path / "plugins"
    shutil.copytree(emu.ROOT / "plugins", src, ignore=shutil.ignore_patterns("build*"))
    plugin = src / "saint_token_drop/saintTokenDropPlugin.cpp"
    text = plugin.read_text()
    assert text.count(old) == 1, "the mutation no longer applies: update PLUGIN_MUTANTS"
    plugin.write_text(text.replace(old, new))
    build = tmp_path / "build"
    cfg = emu.run(["cmake", "-S", src, "-B", build, "-DSAINT_CPU_KERNELS=ON", f"-DTensorRT_INCLUDE_DIR={emu.trt_include()}",
                   f"-DPython3_EXECUTABLE={sys.executable}"], dict(os.environ))
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    res = emu.run(["cmake", "--build", build, "-j", "2", "--target", "saint_emu10_plugins"], dict(os.environ))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    env = emu.env(emulated, SAINT_PLUGIN_LIB=build / "emulated/10/libsaint_plugins.so")
    res = emu.python(MUTANT_BUILD, env, tiny_lowered[model], tmp_path / "m.plan")
    assert "refused:" in res.stdout and expect in res.stdout + res.stderr, res.stdout + res.stderr[-2000:]
