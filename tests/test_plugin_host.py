"""The plugin under a TensorRT stand-in (plugins/tests/trtHost.h), no libnvinfer, no GPU: the
builder's and the runtime's walk, the serialization round trip, bad fields, limits, NaN, static
dims for fixed_r, and every way tools load the two libraries (with a stand-in libnvinfer.so.<major>).
Skipped only when nvcc/cmake or the TensorRT headers are missing."""

import os
import shutil
import subprocess
from pathlib import Path

import onnx
import pytest
import torch

from saint_export import saint_drop
from saint_export.reference.schedule import LayerRule  # noqa: E402
from helpers import as_rule  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
SKIPPED = 77  # the host's exit code when enqueue is compiled out (no CPU kernel runtime)


def trt_include() -> Path | None:
    env = os.environ.get("SAINT_TRT_INCLUDE")
    candidates = ([Path(env)] if env else []) + [ROOT / ".deps/kernel-lens/kernel_lens/include/tensorrt"]
    return next((c for c in candidates if (c / "NvInferRuntime.h").is_file()), None)


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    if NVCC is None or shutil.which("cmake") is None:
        pytest.skip("needs nvcc and cmake")
    inc = trt_include()
    if inc is None:
        pytest.skip("no TensorRT headers: set SAINT_TRT_INCLUDE or run tools/get_trt_headers.sh")
    out = tmp_path_factory.mktemp("host")
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + os.pathsep + "/usr/local/cuda/bin")
    cfg = subprocess.run(["cmake", "-S", str(PLUGINS), "-B", str(out), "-DCMAKE_CUDA_ARCHITECTURES=90",
                          f"-DTensorRT_INCLUDE_DIR={inc}", "-DSAINT_BUILD_HARNESS=OFF", "-DSAINT_BUILD_SAMPLES=OFF",
                          f"-DSAINT_HOST_ENQUEUE={'ON' if (PLUGINS / 'cuda_cpu/cu2cpp.py').is_file() else 'OFF'}"],
                         capture_output=True, text=True, env=env)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    res = subprocess.run(["cmake", "--build", str(out), "-j", "2"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return out


def test_host_walk_fields_limits_static_dims(build):
    """Unit checks plus the build/runtime walk: vote -> size tensor (upper bound N); fixed_r ->
    constant M = N - min(fixed_r, Na) with 2 outputs; bad fields, N > 8192, D > 256 are logged errors."""
    res = subprocess.run([str(build / "saint_plugin_host_test")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert " 0 failed" in res.stdout
    passed = int(res.stdout.strip().splitlines()[-1].split()[0])
    assert passed >= 70, res.stdout


def write_case(d: Path, tokens, metric, expected, **attrs) -> None:
    b, n, c = tokens.shape
    a = dict(threshold=0.75, k=5, gamma=10.0, protected=1, fixed_r=-1) | attrs
    m = expected.kept_index.shape[1]
    (d / "case.txt").write_text(f"{b} {n} {c} {metric.shape[2]} {a['threshold']} {a['k']} {a['gamma']} "
                                f"{a['protected']} {a['fixed_r']} {m}\n")
    tokens.numpy().astype("<f4").tofile(d / "tokens.f32")
    metric.numpy().astype("<f4").tofile(d / "metric.f32")
    expected.tokens.contiguous().numpy().astype("<f4").tofile(d / "expected_tokens.f32")
    expected.kept_index.numpy().astype("<i8").tofile(d / "expected_kept.i64")


def run_host_case(build: Path, flag: str, case: Path) -> None:
    """The host test on a case folder: build phase, enqueue, serialize, runtime phase, enqueue again."""
    res = subprocess.run([str(build / "saint_plugin_host_test"), flag, str(case)], capture_output=True, text=True)
    if res.returncode == SKIPPED:
        assert "build phase: ok" in res.stdout and "round trip: ok" in res.stdout, res.stdout
        pytest.skip("enqueue compiled out: no CPU kernel runtime (plugins/cuda_cpu) in this build; " + res.stdout.strip())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "equal to the reference" in res.stdout and "identical" in res.stdout


def clustered(b, n, d, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, d, generator=g)
    return centres[torch.randint(0, 6, (b, n), generator=g)] + 0.1 * torch.randn(b, n, d, generator=g)


CASES = {
    "vote": dict(),
    "fixed_r": dict(fixed_r=20),
    "fixed_r_above_na": dict(fixed_r=500, protected=2),
    "nan_metric": dict(nan=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_enqueue_build_and_runtime_phase_equal_reference(build, tmp_path, name):
    """Build phase -> enqueue -> outputs == saint_drop -> serialize -> runtime phase -> enqueue, identical."""
    attrs = dict(CASES[name])
    nan = attrs.pop("nan", False)
    metric = clustered(3, 197, 64, seed=len(name))
    if nan:
        metric[0, 3] = float("nan")    # an a-token: its score is NaN, it must rank first (dropped)
        metric[1, 10] = float("nan")   # a b-token: NaN similarities are never edges
    tokens = torch.randn(3, 197, 40)
    kw = dict(threshold=0.75, k=5, gamma=10.0, protected=1, fixed_r=-1) | attrs
    ref = saint_drop(tokens, metric, *as_rule(**kw))
    if nan:
        assert 3 not in ref.kept_index[0].tolist()
        assert all(len(set(row.tolist())) == row.numel() for row in ref.kept_index)  # no duplicate ranks
    write_case(tmp_path, tokens, metric, ref, **kw)
    run_host_case(build, "--case", tmp_path)


@pytest.mark.parametrize("fixed_r", [-1, 6])
def test_per_sample_enqueue_build_and_runtime_phase_equal_reference(build, tmp_path, fixed_r):
    """per_sample = 1: 3 inputs, 4 outputs (int32 mask_out, int32 size tensor), outputs == saint_drop_per_sample
    in both phases; the mask's padding rows never reach the result."""
    from saint_export.reference.rule import saint_drop_per_sample

    metric = torch.cat([clustered(1, 197, 64, seed=s) for s in (3, 4, 5, 6)])
    metric[2, 100:] = torch.randn(97, 64)  # sample 2 is half redundant, half not
    tokens = torch.randn(4, 197, 24)
    mask = torch.arange(197)[None] < torch.tensor([197, 150, 197, 33])[:, None]
    ref = saint_drop_per_sample(tokens, metric, mask, LayerRule(threshold=0.75, k=5, gamma=10.0, fixed_r=fixed_r), 1)
    assert len(set(ref.mask.sum(1).tolist())) > 2
    write_case(tmp_path, tokens, metric, ref, fixed_r=fixed_r)
    mask.numpy().astype("<i4").tofile(tmp_path / "mask.i32")
    ref.mask.numpy().astype("<i4").tofile(tmp_path / "expected_mask.i32")
    run_host_case(build, "--per-sample-case", tmp_path)


def test_nan_scores_have_one_order_in_reference():
    """NaN scores sort first (as torch.sort descending does), ties by index: a permutation."""
    metric = clustered(1, 41, 16, seed=3)
    metric[0, 1] = float("nan")
    metric[0, 7] = float("nan")
    out = saint_drop(torch.randn(1, 41, 4), metric, LayerRule(threshold=0.5, k=1, gamma=10.0, fixed_r=2), 1)
    assert out.r == 2 and sorted(out.kept_index[0].tolist()) == sorted(set(range(41)) - {1, 7})


# (steps, library, count, exit): each library registers through its own loader and no other
STEPS = {
    "trtexec --dynamicPlugins / IPluginRegistry::loadLibrary": (["loadLibrary:{lib}"], "libsaint_plugins.so", 1, 0),
    "Triton plugins= / trtexec --plugins (dlopen)": (["dlopen:{lib}"], "libsaint_plugins_onload.so", 1, 0),
    "loadLibrary of the on-load library is refused (no getCreators)": (["loadLibrary:{lib}"], "libsaint_plugins_onload.so", 0, 2),
    "dlopen of the registry library registers nothing": (["dlopen:{lib}"], "libsaint_plugins.so", 0, 1),
    "loadLibrary then deregisterLibrary": (["loadLibrary:{lib}", "deregister"], "libsaint_plugins.so", 0, 0),
}


@pytest.mark.parametrize("path", list(STEPS))
def test_registered_exactly_once_by_its_own_loader(build, path):
    steps, name, count, code = STEPS[path]
    lib = build / name
    res = subprocess.run([str(build / "saint_registration_test"), *[s.format(lib=lib) for s in steps]],
                         capture_output=True, text=True)
    assert res.returncode == code, res.stdout + res.stderr
    if code != 2:
        assert f"count={count} duplicates=0" in res.stdout and "reentrant=0" in res.stdout, res.stdout + res.stderr


def test_ld_preload_registers_nothing_and_says_why(build):
    """A process without libnvinfer (tritonserver is one): the constructor has no runtime to register with."""
    res = subprocess.run([os.sys.executable, "-c", "pass"], capture_output=True, text=True,
                         env=dict(os.environ, LD_PRELOAD=str(build / "libsaint_plugins_onload.so"), LD_LIBRARY_PATH=""))
    assert res.returncode == 0 and "nothing registered" in res.stderr, res.stderr


POLYGRAPHY = """
import ctypes, os, sys
stub = ctypes.CDLL(sys.argv[1], mode=os.RTLD_LOCAL)   # like `import tensorrt`: libnvinfer loaded locally
ctypes.CDLL(sys.argv[2])                              # what polygraphy --plugins does
dup, reg = ctypes.c_int32(), ctypes.c_int32()
n = stub.saintStubCount(b"SaintTokenDrop", b"1", b"saint", ctypes.byref(dup), ctypes.byref(reg))
print(f"count={n} duplicates={dup.value}")
"""


@pytest.mark.parametrize("stub,count", [("nvinfer_stub", 1), ("nvinfer_stub_other", 0)], ids=["same major", "other major"])
def test_on_load_library_finds_a_runtime_loaded_rtld_local(build, stub, count):
    """By soname (RTLD_NOLOAD), for the major it was built for; a runtime of the other major is refused
    in one line (the plugin and registry interfaces' ABI differs between majors)."""
    lib = next((build / stub).glob("libnvinfer.so.*[0-9]"))
    res = subprocess.run([os.sys.executable, "-c", POLYGRAPHY, str(lib), str(build / "libsaint_plugins_onload.so")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and f"count={count} duplicates=0" in res.stdout, res.stdout + res.stderr
    if count == 0:
        assert "was built for TensorRT" in res.stderr


def test_plugin_libraries_do_not_link_libnvinfer(build):
    for name in ("libsaint_plugins.so", "libsaint_plugins_onload.so"):
        needed = subprocess.run(["readelf", "-d", str(build / name)], capture_output=True, text=True).stdout
        assert "libnvinfer" not in needed, name
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(build / "libsaint_plugins_onload.so")],
                             capture_output=True, text=True).stdout
    assert " T getCreators" not in symbols and " T saintPluginTensorRTMajor" in symbols


def test_fixed_r_gives_static_dims_in_the_tensorrt_onnx(tmp_path):
    """A tiny timm ViT with fixed_r: the lowered model's drop nodes have 2 outputs and static
    token dims (N - min(fixed_r, Na)) after each; a vote layer keeps its size tensor."""
    from saint_export.export.pipeline import onnx_models_from_torch
    from saint_export.models.build import build_model

    from helpers import TINY

    built = build_model(TINY, overrides={"layers": "0-2", "fixed_r": [20, 30, -1]})
    result = onnx_models_from_torch(built, tmp_path / "f.onnx", tmp_path / "f.trt.onnx")
    model = onnx.load(str(result.tensorrt))
    drops = [n for n in model.graph.node if n.domain == "saint"]
    assert [len(n.output) for n in drops] == [2, 2, 3]
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output)}
    n0 = 197
    m0 = n0 - min(20, (n0 - 1 + 1) // 2)
    m1 = m0 - min(30, (m0 - 1 + 1) // 2)
    assert shapes[drops[0].output[0]][1:] == [m0, 192]
    assert shapes[drops[0].output[1]][1] == m0
    assert shapes[drops[1].output[0]][1:] == [m1, 192]
    assert not isinstance(shapes[drops[2].output[0]][1], int) or shapes[drops[2].output[0]][1] == 0  # data-dependent
    # the torch model prunes to the same counts
    with torch.no_grad():
        from saint_export.reference.ops import recording

        with recording() as got:
            built.module(torch.randn(2, 3, 224, 224))
    assert [k.shape[1] for _, k in got][:2] == [m0, m1]
