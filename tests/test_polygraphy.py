"""Polygraphy: the loaders we hand it for engines (inspected before anything runs, no TensorRT
needed), its runners, and its own command line on our outputs."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from saint_export.cli import main
from saint_export.errors import MissingDependencyError
from saint_export.tensorrt.engine import EngineOptions, builder_settings, engine_from_onnx, engine_loaders, engine_runner

TINY_YAML = """\
alias: tiny2
timm_name: vit_tiny_patch16_224
model_kwargs: {depth: 2}
mean: [0.5, 0.5, 0.5]
std: [0.5, 0.5, 0.5]
schedule: {layers: all, threshold: 0.75}
"""
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


@pytest.mark.parametrize("precision,compatible", [("fp32", False), ("fp16", True), ("bf16", False)])
def test_engine_loaders_carry_every_option(exported, precision, compatible):
    folder, lib = exported
    options = EngineOptions(batch=(2, 8, 16), precision=precision, optimization_level=4, workspace_mib=512,
                            timing_cache=folder / "trt.cache", version_compatible=compatible)
    loaders = engine_loaders(folder / "m.trt.onnx", options, lib, (3, 224, 224))
    assert loaders.network.plugins == [str(lib)] and loaders.network.obj.path == str(folder / "m.trt.onnx")
    create = loaders.config._config
    shapes = create.profiles[0]["pixels"]
    assert (shapes.min, shapes.opt, shapes.max) == ((2, 3, 224, 224), (8, 3, 224, 224), (16, 3, 224, 224))
    assert (create.fp16, create.bf16) == (precision == "fp16", precision == "bf16")
    assert create.builder_optimization_level == 4 and create.timing_cache_path == str(folder / "trt.cache")
    assert bool(create.version_compatible) == compatible and bool(create.exclude_lean_runtime) == compatible
    assert loaders.engine_bytes._network is loaders.network and loaders.engine_bytes._config is loaders.config
    assert loaders.engine_bytes.timing_cache_path == str(folder / "trt.cache")  # the cache is written back


@pytest.mark.parametrize("compatible", [False, True])
def test_builder_settings_set_workspace_and_plugins_to_serialize(monkeypatch, compatible):
    calls = {}
    fake_trt = SimpleNamespace(MemoryPoolType=SimpleNamespace(WORKSPACE="workspace"))
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    config = SimpleNamespace(set_memory_pool_limit=lambda pool, size: calls.update({pool: size}))
    builder_settings(EngineOptions(workspace_mib=512, version_compatible=compatible), Path("/lib/libsaint_plugins.so"))(None, None, config)
    assert calls == {"workspace": 512 << 20}
    assert getattr(config, "plugins_to_serialize", None) == (["/lib/libsaint_plugins.so"] if compatible else None)


def test_runner_is_polygraphys_trt_runner_with_the_plugin(exported, monkeypatch):
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


def test_polygraphy_run_on_the_portable_model(exported, tmp_path):
    folder, _ = exported
    res = subprocess.run([str(POLYGRAPHY), "run", str(folder / "m.onnx"), "--onnxrt"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "PASSED" in res.stdout + res.stderr, res.stdout + res.stderr
    # real-redundancy inputs and PyTorch's logits, compared by Polygraphy against onnxruntime
    data = tmp_path / "pg"
    res = CliRunner().invoke(main, ["validate", str(folder / "m.onnx"), "--batch", "4", "--polygraphy", str(data)])
    assert res.exit_code == 0, res.output
    assert json.loads((data / "saint_export.json").read_text())["tool"] == "saint-export"
    cmd = [str(POLYGRAPHY), "run", str(folder / "m.onnx"), "--onnxrt", "--load-inputs", str(data / "inputs.json"),
           "--load-outputs", str(data / "pytorch_outputs.json")]
    res = subprocess.run(cmd + ["--atol", "logits:1e-4", "--rtol", "logits:1e-4"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "PASSED" in res.stdout + res.stderr, res.stdout + res.stderr
    res = subprocess.run(cmd + ["--atol", "logits:0", "--rtol", "logits:0"], capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "FAILED" in res.stdout + res.stderr  # the comparison is real: exact equality fails
    again = CliRunner().invoke(main, ["validate", str(folder / "m.onnx"), "--batch", "4", "--polygraphy", str(data)])
    assert again.exit_code == 0, again.output  # its own files are replaced on a re-run
