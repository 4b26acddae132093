"""Polygraphy: the loaders we hand it for engines (inspected before anything runs, no TensorRT
needed), its runners, and its own command line on our outputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from saint_export.cli import main
from saint_export.errors import MissingDependencyError
from saint_export.tensorrt.engine import EngineOptions, engine_from_onnx, engine_loaders, engine_runner

from helpers import TINY_YAML

POLYGRAPHY = Path(sys.executable).with_name("polygraphy")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("poly")
    (folder / "tiny2.yaml").write_text(TINY_YAML)
    res = CliRunner().invoke(main, ["export", str(folder / "tiny2.yaml"), "--onnx", str(folder / "m.onnx"), "--quiet"])
    assert res.exit_code == 0, res.output
    lib = folder / "libsaint_plugins.so"
    lib.write_bytes(b"\x7fELF stand-in: never loaded by these tests")
    return folder, lib


@pytest.mark.parametrize("precision,compatible,major", [("fp32", False, 10), ("fp16", True, 10), ("bf16", False, 10),
                                                       ("fp16", False, 11)])
def test_engine_loaders_carry_every_option(exported, precision, compatible, major):
    """Inspected before anything runs (no TensorRT import). TensorRT 11 gets no precision flags (a strongly
    typed network); the lean runtime is never excluded."""
    folder, lib = exported
    options = EngineOptions(batch=(2, 8, 16), precision=precision, optimization_level=4, workspace_mib=512,
                            timing_cache=folder / "trt.cache", version_compatible=compatible)
    loaders = engine_loaders(folder / "m.trt.onnx", options, lib, (3, 224, 224), major)
    assert loaders.network.plugins == [str(lib)] and loaders.network.obj.path == str(folder / "m.trt.onnx")
    assert bool(loaders.network.obj.strongly_typed) == (major >= 11)
    create = loaders.config._config
    shapes = create.profiles[0]["pixels"]
    assert (shapes.min, shapes.opt, shapes.max) == ((2, 3, 224, 224), (8, 3, 224, 224), (16, 3, 224, 224))
    typed = major >= 11
    assert (create.fp16, create.bf16) == (precision == "fp16" and not typed, precision == "bf16" and not typed)
    assert create.builder_optimization_level == 4 and create.timing_cache_path == str(folder / "trt.cache")
    assert bool(create.version_compatible) == compatible and not create.exclude_lean_runtime
    assert loaders.engine_bytes._network is loaders.network and loaders.engine_bytes._config is loaders.config
    assert loaders.engine_bytes.timing_cache_path == str(folder / "trt.cache")  # the cache is written back


def test_runner_is_polygraphys_trt_runner_loading_the_plugin_through_the_registry(exported, monkeypatch):
    folder, lib = exported
    plan = folder / "m.plan"
    plan.write_bytes(b"engine")
    monkeypatch.setenv("SAINT_PLUGIN_LIB", str(lib))
    runner = engine_runner(plan)
    assert type(runner).__name__ == "TrtRunner" and runner.name.startswith("m")
    loader = runner._engine_or_context
    assert loader.plugins == [str(lib)] and type(loader.obj).__name__ == "EngineFromBytes"
    assert loader.obj._serialized_engine._path == str(plan)


def test_building_without_tensorrt_fails_in_one_line(exported, monkeypatch):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    folder, lib = exported
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        engine_from_onnx(folder / "m.trt.onnx", folder / "x.plan", EngineOptions(plugin_library=lib))
    assert not (folder / "x.plan").exists()


def polygraphy_cli(*args):
    res = subprocess.run([str(POLYGRAPHY), *map(str, args)], capture_output=True, text=True, timeout=300)
    return res.returncode, res.stdout + res.stderr


@pytest.fixture(scope="module")
def saved(exported):
    """``validate --polygraphy``: real-redundancy inputs and PyTorch's logits in Polygraphy's formats."""
    folder, _ = exported
    res = CliRunner().invoke(main, ["validate", str(folder / "m.onnx"), "--batch", "4", "--polygraphy", str(folder / "pg"),
                                    "--json", str(folder / "v.json")])
    assert res.exit_code == 0, res.output
    return folder / "pg", json.loads((folder / "v.json").read_text())


def test_polygraphy_run_and_inspect_on_the_portable_model(exported):
    folder, _ = exported
    # its default data loader: random pixels, batch 1; the data-dependent token dims resolve at run time
    rc, log = polygraphy_cli("run", folder / "m.onnx", "--onnxrt", "--onnx-outputs", "logits", *KEPT,
                             "--save-outputs", folder / "random.json")
    assert rc == 0 and "PASSED" in log, log
    shapes = [v.shape for v in loaded_outputs(folder / "random.json").values()]
    assert shapes[0] == (1, 1000) and shapes[1][0] == 1 and 197 >= shapes[1][1] >= shapes[2][1]
    rc, log = polygraphy_cli("inspect", "model", folder / "m.onnx")
    assert rc == 0 and "{pixels [dtype=float32, shape=('batch', 3, 224, 224)]}" in log and "'saint': 1" in log, log


def test_polygraphy_run_against_pytorch_outputs(exported, saved):
    folder, _ = exported
    data, _ = saved
    assert json.loads((data / "saint_export.json").read_text())["tool"] == "saint-export"
    cmd = ["run", folder / "m.onnx", "--onnxrt", "--load-inputs", data / "inputs.json", "--load-outputs", data / "pytorch_outputs.json"]
    rc, log = polygraphy_cli(*cmd, "--atol", "logits:1e-4", "--rtol", "logits:1e-4")
    assert rc == 0 and "PASSED" in log, log
    rc, log = polygraphy_cli(*cmd, "--atol", "logits:0", "--rtol", "logits:0")
    assert rc != 0 and "FAILED" in log  # the comparison is real: exact equality fails
    again = CliRunner().invoke(main, ["validate", str(folder / "m.onnx"), "--batch", "4", "--polygraphy", str(data)])
    assert again.exit_code == 0, again.output  # its own files are replaced on a re-run


def test_polygraphy_run_prunes_like_our_onnxruntime_runner(exported, saved):
    """On the saved inputs (photos, generated images) its run prunes: the tokens per layer are
    validate's, and every output equals our onnxruntime runner's, kept_index exactly."""
    import numpy as np

    from saint_export.runtimes.onnxruntime import ort_runner
    from saint_export.verify.runners import compare, function_runner

    folder, _ = exported
    data, report = saved
    rc, log = polygraphy_cli("run", folder / "m.onnx", "--onnxrt", "--load-inputs", data / "inputs.json",
                             "--onnx-outputs", "logits", *KEPT, "--save-outputs", folder / "run.json")
    assert rc == 0 and "PASSED" in log, log
    theirs = loaded_outputs(folder / "run.json")
    assert [theirs[name].shape[1] for name in KEPT] == report["tokens_onnx"] and report["tokens_onnx"][-1] < 197
    feed = {"pixels": json_inputs(data / "inputs.json")}
    runners = [ort_runner(folder / "m.onnx", extra_outputs=KEPT), function_runner("polygraphy run", lambda _: theirs, (3, 224, 224))]
    _, checks = compare(runners, feed, {"logits": (1e-5, 1e-5), "": (0.0, 0.0)}, reference="onnxruntime")
    assert sorted(checks["polygraphy run"]) == sorted(["logits", *KEPT])
    assert all(c.passed for c in checks["polygraphy run"].values()), checks
    assert np.array_equal(theirs["kept_index_block0"][:, :1], np.zeros((4, 1)))  # the class token is protected


KEPT = ("kept_index_block0", "kept_index_block1")


def loaded_outputs(path):
    from polygraphy.comparator import RunResults

    (_, iterations), = RunResults.load(str(path))
    return {k: iterations[0][k] for k in ("logits", *KEPT)}


def json_inputs(path):
    from polygraphy.json import load_json

    return load_json(str(path))[0]["pixels"]


def test_compare_is_polygraphys_rule_with_errors_relative_to_the_reference():
    """``runners.compare``: an element fails when it exceeds both atol and rtol·|reference| (so
    atol = rtol = 1e-4 fails a 1.5e-4 error at 1.0, which numpy.allclose's atol + rtol·|ref| would
    pass); relative errors divide by the reference; integers are exact; shapes must match."""
    import numpy as np

    from saint_export.verify.runners import compare, function_runner

    ref = {"logits": np.array([[2.0, 1.0]], np.float32), "kept": np.array([[0, 3]]), "wide": np.zeros((1, 2), np.float32)}
    same = {"kept": ref["kept"], "wide": ref["wide"]}
    outs = {"close": {**same, "logits": np.array([[2.00019, 1.00009]], np.float32)},  # rel 0.95e-4, abs 0.9e-4
            "band": {**same, "logits": np.array([[2.0, 1.00015]], np.float32)},
            "far": {"logits": np.array([[3.0, 1.0]], np.float32), "kept": np.array([[0, 4]]), "wide": np.zeros((1, 3), np.float32)}}
    runners = [function_runner(name, lambda _, out=out: out, (2,)) for name, out in [("ref", ref), *outs.items()]]
    _, checks = compare(runners, {"pixels": np.zeros((1, 2), np.float32)}, {"logits": (1e-4, 1e-4), "": (0.0, 0.0)}, "ref")
    close, band, far = checks["close"], checks["band"], checks["far"]
    assert all(c.passed for c in close.values()) and all(c.passed for name, c in band.items() if name != "logits")
    assert not band["logits"].passed and band["logits"].max_abs == pytest.approx(1.5e-4, rel=1e-2)
    assert not far["logits"].passed and far["logits"].max_rel == pytest.approx(0.5)  # 1 / |2.0|, not 1 / |3.0|
    assert not far["kept"].passed and (far["kept"].max_abs, far["kept"].max_rel) == (1.0, 0.0)
    assert not far["wide"].passed and far["wide"].note == "shape mismatch" and far["wide"].got_shape == [1, 3]


def test_a_graph_of_standard_ops_builds_without_the_plugin(exported):
    """LLaVA's iterative vision encoder has no SaintTokenDrop node: its engine loads no plugin library
    (none need exist), serializes none and keeps the lean runtime."""
    folder, lib = exported
    options = EngineOptions(batch=(1, 2, 4), version_compatible=True)
    loaders = engine_loaders(folder / "m.trt.onnx", options, None, (3, 224, 224))
    assert type(loaders.network).__name__ == "NetworkFromOnnxPath" and loaders.network.path == str(folder / "m.trt.onnx")
    assert bool(loaders.config._config.version_compatible) and not loaders.config._config.exclude_lean_runtime
    from saint_export.models.record import ModelRecord
    from saint_export.tensorrt.sidecar import sidecar

    record = ModelRecord({"alias": "v"}, "random(seed=0)", [{"layer": 1, "fixed_r": 10}])
    assert sidecar(options, [], None, "10.14", record)["plugin"] is None
    assert sidecar(options, [], lib, "10.14", record)["plugin"]["library"] == str(lib)
