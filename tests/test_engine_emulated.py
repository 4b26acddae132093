"""The whole engine path against the emulated TensorRT (tests/trt_emulator; its API is the real
bindings', its plugin contracts the headers'): saint-export's loaders and Polygraphy's real
loaders, SaveBytes and TrtRunner, our plugin library through the registry, its kernels on the CPU
runtime. What runs here is our code and Polygraphy's, never TensorRT itself: no optimizer, no GPU.
Each run is a subprocess in which ``import tensorrt`` is the emulation of one major (10 or 11)."""

import json
from pathlib import Path

import pytest

import emulated_trt as emu
from helpers import LLAVA_TINY, TINY_YAML

TESTS = str(Path(__file__).resolve().parent)

PARITY = """
import json, sys
sys.path.insert(0, %r)
from pathlib import Path
import numpy as np, torch
from conftest import TINY_SCHEDULES
from helpers import TINY
from saint_export.inputs import photos, preprocess, synthetic_images
from saint_export.models.build import build_model
from saint_export.reference.ops import recording
from saint_export.tensorrt.engine import EngineOptions, engine_from_onnx, engine_loaders, engine_runner, _input_shape
from saint_export.tensorrt.plugins import require_plugin_library
from saint_export.onnx_file import read_proto
import tensorrt as trt
from polygraphy.backend import trt as poly

lowered, plan, name, precision = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
options = EngineOptions(batch=(1, 4, 9), precision=precision)
engine_from_onnx(lowered, plan, options)
built = build_model(TINY, overrides=TINY_SCHEDULES[name])
pixels = preprocess(photos() + synthetic_images(5), TINY)
with torch.no_grad(), recording() as drops:
    ref = built.module(pixels)
with engine_runner(plan) as runner:
    got = torch.as_tensor(np.asarray(runner.infer({"pixels": pixels.numpy()})["logits"], dtype=np.float32))
# the same build with every kept_index marked as an engine output (Polygraphy's ModifyNetworkOutputs)
names = [n.output[1] for n in read_proto(lowered).graph.node if n.domain == "saint"]
major = int(trt.__version__.split(".")[0])
loaders = engine_loaders(lowered, EngineOptions(batch=(1, 4, 9)), require_plugin_library(), _input_shape(read_proto(lowered)), major)
network = poly.ModifyNetworkOutputs(loaders.network, outputs=["logits", *names])
with poly.TrtRunner(poly.EngineFromNetwork(network, loaders.config)) as runner:
    out = runner.infer({"pixels": pixels.numpy()})
kept = [bool(np.array_equal(np.asarray(out[n]), k.numpy())) for n, (_, k) in zip(names, drops)]
header = json.loads(plan.read_bytes()[32:32 + int.from_bytes(plan.read_bytes()[24:32], "little")])
print(json.dumps({"max_abs": float((got - ref).abs().max()), "argmax": bool((got.argmax(-1) == ref.argmax(-1)).all()),
                  "kept": kept, "drops": len(drops), "pruned": [int((k >= 0).sum(1).min()) for _, k in drops],
                  "plugin_types": [p["in_types"][0] for p in header["plugins"]], "strongly_typed": header["strongly_typed"],
                  "flags": header["flags"]}))
""" % TESTS


@pytest.mark.parametrize("name,precision,profile", [
    ("vote", "fp32", 10), ("fixed", "fp32", 10), ("sample", "fp32", 10), ("vote", "fp16", 10),
    ("vote", "fp32", 11), ("sample", "fp16", 11)])
def test_engine_equals_pytorch_and_keeps_the_same_tokens(emulated, tiny_lowered, tmp_path, name, precision, profile):
    """Built through Polygraphy from the TensorRT-lowered ONNX, saved with SaveBytes, run by TrtRunner:
    logits equal PyTorch and every block's kept_index is identical. fp16: TensorRT 10 sets the FP16
    flag (the plugin runs in half); TensorRT 11 has no such flag and builds a float16 copy of the ONNX
    (strongly typed)."""
    res = emu.python(PARITY, emu.env(emulated, profile), tiny_lowered[name], tmp_path / "m.plan", name, precision)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["argmax"] and got["max_abs"] < (1e-4 if precision == "fp32" else 5e-3), got
    assert got["kept"] == [True] * got["drops"] and got["drops"] >= 2, got
    assert min(got["pruned"]) < 197  # the images are redundant: tokens were dropped (real tokens, not padding)
    if precision == "fp16":
        assert got["plugin_types"] == ["HALF"] * got["drops"]
        assert got["strongly_typed"] == (profile == 11) and ("FP16" in got["flags"]) == (profile == 10)
    else:
        assert got["plugin_types"] == ["FLOAT"] * got["drops"]




def test_the_command_line_engine_path(emulated, tmp_path):
    """saint-export vit_t16 --engine writes the plan and sidecar; check PASSes; the Triton repository
    carries the on-load library and the --backend-config flag; polygraphy run --trt --plugins on the
    lowered ONNX matches the saved PyTorch outputs."""
    env = emu.env(emulated)
    res = emu.run([emu.SAINT, "vit_t16", "--engine", "m.plan", "--out", "o", "--quiet"], env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    sidecar = json.loads((tmp_path / "m.plan.json").read_text())
    assert sidecar["plugin"]["serialized_into_engine"] is False and sidecar["tensorrt_version"].startswith("10.")
    res = emu.run([emu.SAINT, "check", "m.plan"], env, cwd=tmp_path)
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout + res.stderr
    assert "never deactivated" not in res.stdout + res.stderr
    res = emu.run([emu.SAINT, "triton", "m.plan", "--repo", "repo"], env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "--backend-config=tensorrt,plugins=" in res.stdout and "LD_PRELOAD" not in res.stdout
    model = tmp_path / "repo/vit_t16"
    assert (model / "libsaint_plugins_onload.so").is_file() and not (model / "libsaint_plugins.so").exists()
    assert "libsaint_plugins_onload.so" in (model / "config.pbtxt").read_text()
    res = emu.run([emu.SAINT, "validate", "o/vit_t16.onnx", "--batch", "4", "--polygraphy", "pg"], env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    # polygraphy loads plugins with ctypes.CDLL before it imports tensorrt: the on-load library loads the
    # runtime from the library path itself (here: the stand-in libnvinfer.so.10's folder)
    pg_env = dict(env, LD_LIBRARY_PATH=f"{env['LD_LIBRARY_PATH']}:{emulated / '10'}")
    res = emu.run([emu.POLYGRAPHY, "run", "o/vit_t16.trt.onnx", "--trt", "--plugins", emulated / "10/libsaint_plugins_onload.so",
                   "--load-inputs", "pg/inputs.json", "--load-outputs", "pg/pytorch_outputs.json",
                   "--trt-min-shapes", "pixels:[1,3,224,224]", "--trt-opt-shapes", "pixels:[4,3,224,224]",
                   "--trt-max-shapes", "pixels:[8,3,224,224]"], pg_env, cwd=tmp_path)
    assert res.returncode == 0 and "PASSED | Output: 'logits'" in res.stdout + res.stderr, res.stdout[-3000:] + res.stderr[-2000:]


@pytest.mark.parametrize("profile", [10, 11])
def test_bench_trt_and_fp16_and_bf16_from_the_command_line(emulated, tmp_path, profile):
    (tmp_path / "tiny2.yaml").write_text(TINY_YAML)
    env = emu.env(emulated, profile)
    res = emu.run([emu.SAINT, "bench", "tiny2.yaml", "--backend", "trt", "--batch", "2", "--iters", "2", "--warmup", "0",
                   "--min-seconds", "0"], env, cwd=tmp_path)
    assert res.returncode == 0 and "trt " in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]
    res = emu.run([emu.SAINT, "tiny2.yaml", "--engine", "h.plan", "--precision", "fp16", "--quiet"], env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    res = emu.run([emu.SAINT, "check", "h.plan", "--tol", "logits=2e-2"], env, cwd=tmp_path)
    assert res.returncode == 0 and "PASS" in res.stdout, res.stdout + res.stderr
    res = emu.run([emu.SAINT, "tiny2.yaml", "--engine", "b.plan", "--precision", "bf16", "--quiet", "--force"], env, cwd=tmp_path)
    if profile == 11:  # strongly typed: no bf16 flag, and we write no bfloat16 ONNX
        errors = [line for line in res.stdout.splitlines() + res.stderr.splitlines() if line.startswith("error:")]
        assert res.returncode == 3 and len(errors) == 1 and "bf16" in errors[0], res.stdout + res.stderr
    else:
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


COMPATIBLE = """
import json, sys
sys.path.insert(0, %r)
from pathlib import Path
import numpy as np
from polygraphy.backend import trt as poly
from saint_export.tensorrt.engine import EngineOptions, engine_from_onnx, engine_loaders, _input_shape
from saint_export.tensorrt.plugins import require_plugin_library
from saint_export.onnx_file import read_proto
from polygraphy.backend.common import SaveBytes

lowered, folder = Path(sys.argv[1]), Path(sys.argv[2])
engine_from_onnx(lowered, folder / "vc.plan", EngineOptions(batch=(1, 2, 4), version_compatible=True))
# what engine.py did before: the lean runtime excluded exactly when the plugin is serialized
loaders = engine_loaders(lowered, EngineOptions(batch=(1, 2, 4), version_compatible=True), require_plugin_library(),
                         _input_shape(read_proto(lowered)))
loaders.config._config.exclude_lean_runtime = True
SaveBytes(loaders.engine_bytes, str(folder / "lean.plan"))()
print("built")
""" % TESTS

RUN_PLAN = """
import sys
from pathlib import Path
import numpy as np
from saint_export.tensorrt.engine import activate, engine_runner
from saint_export.tensorrt.plugins import load_plugin_library
from saint_export.errors import SaintExportError
if len(sys.argv) > 2:
    load_plugin_library(sys.argv[2])  # what the runner did before: load the library the plan carries
try:
    with activate(engine_runner(Path(sys.argv[1])), sys.argv[1]) as runner:
        out = runner.infer({"pixels": np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)})
    print("ran", out["logits"].shape)
except SaintExportError as exc:
    print("refused:", exc)
"""


def test_version_compatible_engines_carry_the_plugin_and_run_on_a_later_version(emulated, tiny_lowered, tmp_path):
    """Defect 8: the lean runtime stays in the plan (a plan without it runs only on the TensorRT that
    built it), and the runner does not load the library the plan carries (TensorRT refuses a second
    registration of the creator)."""
    res = emu.python(COMPATIBLE, emu.env(emulated), tiny_lowered["vote"], tmp_path)
    assert res.returncode == 0 and "built" in res.stdout, res.stdout + res.stderr[-3000:]
    assert json.loads((tmp_path / "vc.plan.json").read_text())["plugin"]["serialized_into_engine"] is True
    later = emu.env(emulated, plugin=False, SAINT_TRT_EMULATOR_VERSION="10.14.1.48")
    res = emu.python(RUN_PLAN, later, tmp_path / "vc.plan")
    assert "ran (2, 1000)" in res.stdout, res.stdout + res.stderr[-3000:]
    res = emu.python(RUN_PLAN, later, tmp_path / "lean.plan")
    assert "refused:" in res.stdout and "lean runtime" in res.stdout + res.stderr, res.stdout + res.stderr[-3000:]
    res = emu.python(RUN_PLAN, emu.env(emulated), tmp_path / "vc.plan", emulated / "10/libsaint_plugins.so")
    assert "refused:" in res.stdout and "already registered" in res.stdout + res.stderr, res.stdout + res.stderr[-3000:]
    (tmp_path / "x.plan").write_bytes((tmp_path / "vc.plan").read_bytes())
    res = emu.run([emu.SAINT, "triton", tmp_path / "vc.plan", "--repo", tmp_path / "repo", "--name", "vc"], emu.env(emulated))
    assert res.returncode == 0 and "version-compatible=true" in res.stdout, res.stdout + res.stderr
    assert sorted(p.name for p in (tmp_path / "repo/vc").iterdir()) == ["1", "config.pbtxt"]


CONTRACT = """
import sys
from pathlib import Path
import onnx
from saint_export.tensorrt.engine import EngineOptions, engine_from_onnx
from saint_export.errors import SaintExportError
model = onnx.load(sys.argv[1])
drops = [n for n in model.graph.node if n.domain == "saint"]
if sys.argv[3] == "bool-mask":  # the lowering before the fix: the bool mask straight into the plugin
    casts = {n.output[0]: n for n in model.graph.node if n.op_type == "Cast"}
    for node in drops:
        cast = casts.get(node.input[2])
        if cast is not None:
            node.input[2] = cast.input[0]
            model.graph.node.remove(cast)
elif sys.argv[3] == "no-max-tokens":
    for a in list(drops[1].attribute):
        if a.name == "max_tokens":
            drops[1].attribute.remove(a)
onnx.save(model, sys.argv[2])
try:
    engine_from_onnx(Path(sys.argv[2]), Path(sys.argv[2]).with_suffix(".plan"), EngineOptions(batch=(1, 2, 4)))
    print("built")
except SaintExportError as exc:
    print("refused:", exc)
"""


@pytest.mark.parametrize("case,model,expect", [
    ("bool-mask", "sample", "kBOOL"),            # defect 5: NvInferRuntimePlugin.h, PluginTensorDesc::type
    ("no-max-tokens", "vote", "max_tokens"),     # defect 6: opt must not depend on a size tensor
    ("as-exported", "sample", "built")])
def test_the_builder_holds_plugin_io_to_the_headers(emulated, tiny_lowered, tmp_path, case, model, expect):
    res = emu.python(CONTRACT, emu.env(emulated), tiny_lowered[model], tmp_path / "m.trt.onnx", case)
    assert res.returncode == 0 and expect in res.stdout + res.stderr, res.stdout + res.stderr[-3000:]
    assert (res.stdout.strip().splitlines()[-1] == "built") == (case == "as-exported")


FP16_FLAG = """
from polygraphy.backend import trt as poly
try:
    poly.CreateConfig(fp16=True)(*poly.CreateNetwork()())
    print("fp16 flag set")
except Exception as exc:
    print("refused:", type(exc).__name__, exc)
"""


def test_tensorrt_11_has_no_fp16_flag(emulated):
    """Defect 3: Polygraphy's CreateConfig(fp16=True) fails on TensorRT 11 (so engine_loaders never
    asks for it there; the fp16 engine above is built strongly typed from a float16 ONNX)."""
    assert "fp16 flag set" in emu.python(FP16_FLAG, emu.env(emulated, 10)).stdout
    res = emu.python(FP16_FLAG, emu.env(emulated, 11))
    assert "refused:" in res.stdout and "fp16" in res.stdout.lower(), res.stdout + res.stderr


LOAD = """
import sys
from saint_export.tensorrt.plugins import load_plugin_library
from saint_export.errors import SaintExportError
try:
    load_plugin_library(sys.argv[1]); load_plugin_library(sys.argv[1])
    print("loaded twice, registered once")
except SaintExportError as exc:
    print("refused:", exc)
"""


def test_the_python_loader_checks_the_major_and_loads_once(emulated):
    assert "registered once" in emu.python(LOAD, emu.env(emulated, 11), emulated / "11/libsaint_plugins.so").stdout
    res = emu.python(LOAD, emu.env(emulated, 11), emulated / "10/libsaint_plugins.so")
    assert "refused:" in res.stdout and "built for TensorRT 10" in res.stdout, res.stdout + res.stderr
    res = emu.python(LOAD, emu.env(emulated, 10), emulated / "10/libsaint_plugins_onload.so")
    assert "refused:" in res.stdout and "libsaint_plugins.so" in res.stdout


SINGLE = """
import sys
sys.path.insert(0, %r)
import torch
from helpers import one_plugin_case
from saint_export.reference.schedule import LayerRule
from trt_single_plugin import run_single_plugin
tokens, metric, ref = one_plugin_case()
out, kept = run_single_plugin(tokens, metric, LayerRule(), 1)
print("equal", torch.equal(kept, ref.kept_index), torch.equal(out, ref.tokens), ref.r)
""" % TESTS


def test_one_plugin_network_equals_the_reference(emulated):
    """A network made with the API (CreateNetwork, add_plugin_v3) and the creator's fields, not the parser."""
    res = emu.python(SINGLE, emu.env(emulated))
    assert "equal True True" in res.stdout and not res.stdout.strip().endswith(" 0"), res.stdout + res.stderr[-3000:]


VISION = """
import sys
from pathlib import Path
import numpy as np, onnxruntime as ort
from saint_export.tensorrt.engine import activate, engine_runner
plan, portable = Path(sys.argv[1]), Path(sys.argv[2])
pixels = np.random.default_rng(0).standard_normal((3, 3, 56, 56)).astype(np.float32)
pixels[1] = pixels[1, :, :1, :1]  # a flat image: the bipartite vote drops more there
want = ort.InferenceSession(str(portable)).run(None, {"pixels": pixels})
with activate(engine_runner(plan), plan) as runner:
    got = runner.infer({"pixels": pixels})
print("embeds", float(np.abs(np.asarray(got["image_embeds"]) - want[0]).max()), "kept",
      bool(np.array_equal(np.asarray(got["kept_index"]), want[1])), np.asarray(got["kept_index"]).shape)
"""


@pytest.mark.parametrize("rule", ["iterative", "bipartite"])
def test_llava_vision_engines(emulated, tmp_path, rule):
    """The iterative encoder is plain layers (no plugin anywhere: none is on the path); the bipartite
    one has a SaintTokenDrop node, so its outputs have a data-dependent token count (output allocators)."""
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("transformers")
    (tmp_path / "llava_tiny.yaml").write_text(yaml.safe_dump(LLAVA_TINY))
    env = emu.env(emulated, plugin=rule == "bipartite")
    res = emu.run([emu.SAINT, "llava_tiny.yaml", "--vision", "--rule", rule, "--engine", "v.plan", "--batch", "2", "--quiet"],
                  env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert (json.loads((tmp_path / "v.plan.json").read_text())["plugin"] is None) == (rule == "iterative")
    res = emu.python(VISION, env, tmp_path / "v.plan", tmp_path / "out/llava_tiny/llava_tiny_vision.onnx")
    assert res.returncode == 0 and "kept True" in res.stdout, res.stdout + res.stderr[-3000:]
    assert float(res.stdout.split()[1]) < 1e-4


SETTINGS = """
import sys
from pathlib import Path
import tensorrt as trt
from saint_export.tensorrt.engine import EngineOptions, builder_settings
for compatible in (False, True):
    config = trt.Builder(trt.Logger()).create_builder_config()
    builder_settings(EngineOptions(workspace_mib=512, version_compatible=compatible), Path(sys.argv[1]))(None, None, config)
    print(config.get_memory_pool_limit(trt.MemoryPoolType.WORKSPACE), config.plugins_to_serialize)
"""


def test_builder_settings_on_a_builder_config(emulated):
    """The workspace pool limit, and the library to serialize only into version-compatible engines."""
    res = emu.python(SETTINGS, emu.env(emulated), "/lib/libsaint_plugins.so")
    assert res.stdout.split("\n")[:2] == [f"{512 << 20} []", f"{512 << 20} ['/lib/libsaint_plugins.so']"], res.stdout + res.stderr
