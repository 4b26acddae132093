"""Triton model repository generation, validated with Triton's ModelConfig protobuf."""

import json

import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from saint_export.cli import main
from saint_export.models.record import ModelRecord
from saint_export.tensorrt.engine import EngineOptions
from saint_export.tensorrt.sidecar import sidecar

IO = [{"name": "pixels", "shape": [-1, 3, 224, 224], "dtype": "DataType.FLOAT"},
      {"name": "logits", "shape": [-1, 1000], "dtype": "DataType.FLOAT", "output": True}]


def write_engine(tmp_path, fixed: bool):
    schedule = [{"layer": i, "threshold": 0.75, "k": 5, "gamma": 10.0, "fixed_r": 16 if fixed else -1} for i in range(6)]
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"engine bytes (opaque to the generator)")
    lib = tmp_path / "libsaint_plugins.so"
    lib.write_bytes(b"\x7fELF plugin")
    (tmp_path / "libsaint_plugins_onload.so").write_bytes(b"\x7fELF plugin, registers on load")  # built beside it
    record = ModelRecord({"alias": "vit_b16"}, "random(seed=0)", schedule, 1)
    data = sidecar(EngineOptions(batch=(1, 8, 32)), IO, lib, "10.3.0", record)
    (tmp_path / "m.plan.json").write_text(json.dumps(data))
    return plan, lib


def parse(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


@pytest.mark.parametrize("fixed", [False, True])
def test_repository_layout_and_batching_rule(tmp_path, fixed):
    plan, lib = write_engine(tmp_path, fixed)
    res = CliRunner().invoke(main, ["triton", str(plan), "--repo", str(tmp_path / "repo"), "--plugin", str(lib)])
    assert res.exit_code == 0, res.output
    model = tmp_path / "repo/vit_b16"
    assert (model / "1/model.plan").read_bytes() == plan.read_bytes()
    # Triton's TensorRT backend only dlopens plugins=: the library that registers itself is copied
    assert (model / "libsaint_plugins_onload.so").read_bytes() == lib.with_name("libsaint_plugins_onload.so").read_bytes()
    assert not (model / "libsaint_plugins.so").exists()
    config = parse(model / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 32
    assert [i.name for i in config.input] == ["pixels"] and list(config.input[0].dims) == [3, 224, 224]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert list(config.output[0].dims) == [1000]
    assert config.HasField("dynamic_batching") == fixed
    text = (model / "config.pbtxt").read_text()
    assert ("batch mean" in text) != fixed
    assert "LD_PRELOAD" not in text and "--backend-config=tensorrt,plugins=<this folder>/libsaint_plugins_onload.so" in text
    assert "--backend-config=tensorrt,plugins=" in res.output and str(model.resolve()) in res.output


def test_repository_errors(tmp_path):
    plan, lib = write_engine(tmp_path, False)
    run = lambda *a: CliRunner().invoke(main, ["triton", *a])  # noqa: E731
    assert run(str(plan), "--repo", str(tmp_path / "r"), "--plugin", str(lib)).exit_code == 0
    assert run(str(plan), "--repo", str(tmp_path / "r"), "--plugin", str(lib)).exit_code == 0  # its own folder: replaced
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["vit_b16"]
    (tmp_path / "r" / "mine").mkdir()
    (tmp_path / "r" / "mine" / "notes.txt").write_text("the user's")
    res = run(str(plan), "--repo", str(tmp_path / "r"), "--plugin", str(lib), "--name", "mine")
    assert res.exit_code == 6 and "not written by saint-export" in res.output
    assert (tmp_path / "r" / "mine" / "notes.txt").read_text() == "the user's"
    for bad in ("../escape", "a/b", ".."):  # a model name is one folder name: nothing reaches the filesystem
        res = run(str(plan), "--repo", str(tmp_path / "r8"), "--plugin", str(lib), "--name", bad)
        assert res.exit_code == 3 and "one folder name" in res.output, (bad, res.output)
    assert not (tmp_path / "r8").exists() and not (tmp_path / "escape").exists()
    res = run(str(plan), "--repo", str(tmp_path / "r9"), "--plugin", str(lib), "--max-batch", "0")
    assert res.exit_code == 2 and not (tmp_path / "r9").exists()
    res = run(str(plan), "--repo", str(tmp_path / "r2"), "--plugin", str(lib), "--max-batch", "64")
    assert res.exit_code == 4 and "outside the engine's profile" in res.output
    (tmp_path / "m.plan.json").unlink()
    res = run(str(plan), "--repo", str(tmp_path / "r3"))
    assert res.exit_code == 4 and "sidecar" in res.output
    res = run(str(tmp_path / "none.plan"), "--repo", str(tmp_path / "r4"))
    assert res.exit_code == 4 and "does not exist" in res.output
    (tmp_path / "m.plan.json").write_text("[1, 2]")  # a sidecar that is not ours: one line, not a traceback
    res = run(str(plan), "--repo", str(tmp_path / "r5"))
    assert res.exit_code == 4 and "not an engine sidecar" in res.output
    plan, lib = write_engine(tmp_path, False)
    lib.with_name("libsaint_plugins_onload.so").unlink()
    res = run(str(plan), "--repo", str(tmp_path / "r6"), "--plugin", str(lib))
    assert res.exit_code == 5 and "libsaint_plugins_onload.so not found" in res.output
    res = run(str(plan), "--repo", str(tmp_path / "r7"), "--plugin", str(tmp_path / "nonexist.so"))
    assert res.exit_code == 4 and "does not exist" in res.output and "or pass --plugin" not in res.output


def test_bad_config_fails_triton_parser():
    from saint_export.errors import StageError
    from saint_export.tensorrt.triton import validate_config

    with pytest.raises(StageError, match="does not parse"):
        validate_config('name: "x"\nplatform: "tensorrt_plan"\nmax_batch_size: eight\n')
