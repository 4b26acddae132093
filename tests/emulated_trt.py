"""The emulated TensorRT (tests/trt_emulator) for tests: build its native half once per session
(a CPU build of plugins/: the plugin libraries with the kernels on the CPU runtime, the stand-in
libnvinfer.so.10/.11, the emulated libcudart.so), and the environment that makes a subprocess see
it as ``tensorrt``. Subprocesses keep it out of the test process, where ``import tensorrt`` must
still fail (the tests of the no-TensorRT paths rely on that)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EMULATOR = ROOT / "tests" / "trt_emulator"
SAINT = Path(sys.executable).with_name("saint-export")
POLYGRAPHY = Path(sys.executable).with_name("polygraphy")


def trt_include() -> Path | None:
    env = os.environ.get("SAINT_TRT_INCLUDE")
    candidates = ([Path(env)] if env else []) + [ROOT / ".deps/kernel-lens/kernel_lens/include/tensorrt"]
    return next((c for c in candidates if (c / "NvInferRuntime.h").is_file()), None)


def stubs_path() -> Path | None:
    env = os.environ.get("SAINT_TRT_STUBS")
    candidates = ([Path(env)] if env else []) + [ROOT / ".deps/tensorrt-stubs/tensorrt_bindings/tensorrt.pyi"]
    return next((c for c in candidates if c.is_file()), None)


def build(out: Path) -> Path:
    """cmake the CPU configuration with the TensorRT headers; returns the emulated/ folder."""
    inc = trt_include()
    if inc is None:
        pytest.skip("no TensorRT headers for the emulated TensorRT: run tools/get_trt_headers.sh or set SAINT_TRT_INCLUDE")
    if shutil.which("cmake") is None or not (shutil.which("c++") or shutil.which("g++")):
        pytest.skip("the emulated TensorRT needs cmake and a C++ compiler")
    cfg = subprocess.run(["cmake", "-S", str(ROOT / "plugins"), "-B", str(out), "-DSAINT_CPU_KERNELS=ON",
                          f"-DTensorRT_INCLUDE_DIR={inc}", f"-DPython3_EXECUTABLE={sys.executable}"],
                         capture_output=True, text=True)
    if cfg.returncode != 0 and "CUDA headers not found" in cfg.stdout + cfg.stderr:
        pytest.skip("the emulated TensorRT needs the CUDA headers (cuda_fp16.h)")
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    res = subprocess.run(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out / "emulated"


def env(emulated: Path, profile: int = 10, plugin: bool = True, **extra) -> dict[str, str]:
    """A subprocess environment where ``import tensorrt`` is the emulation of ``profile``."""
    e = dict(os.environ)
    e.update(PYTHONPATH=os.pathsep.join([str(EMULATOR), e.get("PYTHONPATH", "")]).rstrip(os.pathsep),
             SAINT_TRT_EMULATOR_LIBDIR=str(emulated), SAINT_TRT_EMULATOR_PROFILE=str(profile),
             LD_LIBRARY_PATH=os.pathsep.join([str(emulated / "cudart"), e.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep))
    e.pop("SAINT_PLUGIN_LIB", None)
    if plugin:
        e["SAINT_PLUGIN_LIB"] = str(emulated / str(profile) / "libsaint_plugins.so")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def run(args: list, environment: dict, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=environment, cwd=cwd, timeout=timeout)


def python(code: str, environment: dict, *args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-c", code, *args], environment, cwd=cwd)


# ---- the real bindings' surface (tensorrt-stubs) ----

def stub_surface(path: Path) -> tuple[dict[str, set[str]], dict[str, dict[str, int]], set[str]]:
    """(class -> member names, its bases' included; enum class -> {member: value}; module-level names)
    from the stubs. The stubs are generated text that is not always valid Python (argument order), so
    they are read by line."""
    classes: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    enums: dict[str, dict[str, int]] = {}
    module: set[str] = set()
    current, in_doc = None, False
    for line in path.read_text().splitlines():
        if line.count('"""') % 2 == 1:
            in_doc = not in_doc
            continue
        if in_doc or '"""' in line:
            continue
        m = re.match(r"^class (\w+)(?:\((.*)\))?:", line)
        if m:
            current = m.group(1)
            classes[current] = set()
            bases[current] = [b.strip() for b in (m.group(2) or "").split(",") if b.strip()]
            module.add(current)
            continue
        m = re.match(r"^(?:def )?(\w+)", line)
        if m and not line.startswith((" ", "\t", "#", "@", "import", "from")):
            current = None
            module.add(m.group(1))
            continue
        if current is None:
            continue
        m = re.match(r"^    (?:def |class )?(\w+)", line)
        if m:
            classes[current].add(m.group(1))
        m = re.match(r"^    (\w+): typing\.ClassVar\[(\w+)\]  # value = <\w+\.(\w+): (-?\d+)>", line)
        if m and m.group(2) == current:
            enums.setdefault(current, {})[m.group(1)] = int(m.group(4))

    def members(name: str, seen: frozenset = frozenset()) -> set[str]:
        own = set(classes.get(name, set()))
        for base in bases.get(name, []):
            if base in classes and base not in seen:
                own |= members(base, seen | {name})
        return own

    return {name: members(name) for name in classes}, enums, module


SURFACE = r"""
import inspect, json, sys
import tensorrt as trt
out = {"module": [], "classes": {}, "enums": {}, "version": trt.__version__}
for name, obj in vars(trt).items():
    if name.startswith("_"):
        continue
    if inspect.ismodule(obj) or getattr(obj, "__module__", "tensorrt").split(".")[0] != "tensorrt":
        if not isinstance(obj, trt.DataType):  # foreign objects (numpy, Path) are imports, not API
            continue
    out["module"].append(name)
    if inspect.isclass(obj):
        own = set()
        for klass in obj.__mro__:
            if klass.__module__.split(".")[0] != "tensorrt":
                continue
            own |= {k for k in vars(klass) if not (k.startswith("_") and not (k.startswith("__") and k.endswith("__")))}
        own -= {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__slots__", "__annotations__",
                "__firstlineno__", "__static_attributes__", "__new__", "_PUBLIC"}
        out["classes"][name] = sorted(own)
        members = getattr(obj, "__members__", None)
        if isinstance(members, dict) and members:
            out["enums"][name] = {k: int(v) for k, v in members.items()}
            out["enums"][name].update({k: int(getattr(obj, k)) for k in own if k.isupper() and isinstance(getattr(obj, k), obj)})
print(json.dumps(out))
"""
