"""The native side without a GPU: spec file vs the ONNX op definition, the CMake build of
kernels + harness + plugin against TensorRT headers, the plugin's host-side unit test, and the
clear message when TensorRT headers are missing."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from saint_export.export import opdef

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)


def trt_include() -> Path | None:
    env = os.environ.get("SAINT_TRT_INCLUDE")
    candidates = ([Path(env)] if env else []) + [ROOT / ".deps/kernel-lens/kernel_lens/include/tensorrt"]
    return next((c for c in candidates if (c / "NvInferRuntime.h").is_file()), None)


def test_spec_matches_the_onnx_op():
    spec = yaml.safe_load((PLUGINS / "saint_token_drop/spec.yaml").read_text())
    assert (spec["name"], spec["domain"], spec["version"]) == (opdef.OP_TYPE, opdef.DOMAIN, opdef.VERSION)
    assert spec["per_sample_version"] == opdef.SAMPLE_VERSION
    assert (spec["plugin"]["version"], spec["plugin"]["namespace"]) == (opdef.PLUGIN_VERSION, opdef.PLUGIN_NAMESPACE)
    assert [(a["name"], a["type"], a["default"]) for a in spec["attributes"]] == [
        (a.name, a.kind, a.default) for a in (*opdef.ATTRIBUTES, opdef.PER_SAMPLE)]
    assert [i["name"] for i in spec["inputs"]] == [n for n, _, _ in (*opdef.INPUTS, opdef.MASK_INPUT)]
    assert [o["name"] for o in spec["outputs"]] == [n for n, _, _ in (*opdef.OUTPUTS, opdef.MASK_OUTPUT, opdef.SIZE_OUTPUT)]


def cmake(build: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + os.pathsep + "/usr/local/cuda/bin")
    cfg = subprocess.run(["cmake", "-S", str(PLUGINS), "-B", str(build), "-DCMAKE_CUDA_ARCHITECTURES=90", *extra],
                         capture_output=True, text=True, env=env)
    if cfg.returncode != 0:
        return cfg
    out = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True, env=env)
    out.stdout = cfg.stdout + cfg.stderr + out.stdout
    return out


needs_toolchain = pytest.mark.skipif(NVCC is None or shutil.which("cmake") is None, reason="needs nvcc and cmake")


@needs_toolchain
def test_plugin_builds_against_tensorrt_headers_and_host_test_passes(tmp_path):
    inc = trt_include()
    if inc is None:
        pytest.skip("no TensorRT headers: run tools/get_trt_headers.sh or set SAINT_TRT_INCLUDE")
    res = cmake(tmp_path, f"-DTensorRT_INCLUDE_DIR={inc}")
    assert res.returncode == 0, res.stdout + res.stderr
    lib = tmp_path / "libsaint_plugins.so"
    assert lib.is_file() and (tmp_path / "libsaint_kernels_harness.so").is_file()
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
    assert " T getCreators" in symbols and " T setLoggerFinder" in symbols
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(lib)], capture_output=True, text=True).stdout
    assert "nvinfer" not in undefined.lower()  # loadable by trtexec --dynamicPlugins without extra links
    test = subprocess.run([str(tmp_path / "saint_plugin_host_test")], capture_output=True, text=True)
    assert test.returncode == 0, test.stdout
    assert " 0 failed" in test.stdout
    # the C++ runner sample compiles against the same headers (links only where libnvinfer exists)
    assert list(tmp_path.rglob("saint_runner.cpp.o")) or (tmp_path / "samples/saint_runner").is_file()


@needs_toolchain
def test_build_without_tensorrt_is_clear_not_broken(tmp_path):
    res = cmake(tmp_path, "-DTensorRT_INCLUDE_DIR=/nonexistent", "-DTENSORRT_ROOT=/nonexistent")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "TensorRT headers not found" in res.stdout + res.stderr
    assert (tmp_path / "libsaint_kernels_harness.so").is_file()
    assert not (tmp_path / "libsaint_plugins.so").exists()
