"""The main command (export + validate), export, validate and bench, through click's runner."""

import json

import onnx
import pytest
from click.testing import CliRunner

from saint_export.cli import main

TINY_YAML = """\
alias: tiny2
description: 2-block ViT-Ti for tests
timm_name: vit_tiny_patch16_224
model_kwargs: {depth: 2}
mean: [0.5, 0.5, 0.5]
std: [0.5, 0.5, 0.5]
schedule: {layers: all, threshold: 0.75}
"""


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny2.yaml").write_text(TINY_YAML)

    def invoke(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_main_command_exports_both_and_validates(run, tmp_path):
    res = run("tiny2.yaml", "--out", "o", "--batch", "4", "--quiet")
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and "kept_index_block1" in res.output
    report = json.loads((tmp_path / "o/validation.json").read_text())
    assert report["passed"] and report["tokens_torch"] == report["tokens_onnx"]
    assert (tmp_path / "o/tiny2.onnx").is_file() and (tmp_path / "o/tiny2.trt.onnx").is_file()
    res = run("tiny2.yaml", "--out", "o", "--batch", "4", "--quiet")  # the same command again: its own files replaced
    assert res.exit_code == 0, res.output
    assert not [p.name for p in (tmp_path / "o").iterdir() if p.name.startswith(".")]  # no staging left behind

    res = run("validate", "o/tiny2.onnx", "--batch", "3", "--json", "v.json")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "v.json").read_text())["batch"] == 3
    res = run("validate", "o/tiny2.onnx", "--tol", "logits=0:0", "--batch", "2")
    assert res.exit_code == 1 and "FAIL" in res.output  # zero tolerance: float noise must fail, every row still printed
    assert "kept_index_block0" in res.output
    res = run("validate", "o/tiny2.onnx", "--tol", "logit=1e-3", "--batch", "2")  # a typo is not ignored
    assert res.exit_code == 3 and "--tol logit: no such output" in res.output and "kept_index_block0" in res.output


def test_export_only_with_overrides(run, tmp_path):
    res = run("export", "tiny2.yaml", "--onnx", "m/a.onnx", "--fixed-r", "10", "--quiet")
    assert res.exit_code == 0, res.output
    model = onnx.load(str(tmp_path / "m/a.onnx"))
    fixed = [a.i for n in model.graph.node if n.domain == "saint" for a in n.attribute if a.name == "fixed_r"]
    assert fixed == [10, 10]
    assert (tmp_path / "m/a.trt.onnx").is_file()


def test_engine_without_tensorrt_writes_onnx_then_stops_clearly(run, tmp_path):
    res = run("tiny2.yaml", "--out", "e", "--batch", "2", "--engine", "e/m.plan", "--quiet")
    assert res.exit_code == 5, res.output
    assert "TensorRT is not installed" in res.output.strip().splitlines()[-1]
    assert (tmp_path / "e/tiny2.onnx").is_file() and not (tmp_path / "e/m.plan").exists()


@pytest.mark.parametrize("args,code,needle", [
    (("validate", "missing.onnx"), 4, "does not exist"),
    (("validate", "garbage.onnx"), 4, "cannot read ONNX"),
    (("export", "tiny2.yaml", "--onnx", "mine.onnx"), 6, "not written by saint-export"),
    (("tiny2.yaml", "--opset", "17"), 2, "17"),
    (("nonexistent_model",), 3, "unknown model"),
    (("tiny2.yaml", "--threshold", "2"), 3, "threshold"),
    (("bench", "tiny2.yaml", "--batch", "0"), 3, "--batch"),
    (("tiny2.yaml", "--engine", "e.plan", "--engine-batch", "8,4,1"), 3, "--engine-batch"),  # before any export
    (("tiny2.yaml", "--engine", "e.plan", "--engine-batch", "0,0,0"), 3, "--engine-batch"),
    (("export", "tiny2.yaml", "--layers", "1-0"), 3, "runs backwards"),
    # --tol is read with the command line: nothing is exported before these are refused
    (("tiny2.yaml", "--tol", "logits"), 2, "NAME=ATOL"),
    (("tiny2.yaml", "--tol", "logits=1:2:3"), 2, "NAME=ATOL"),
    (("tiny2.yaml", "--tol", "logits=nan"), 3, "finite"),
    (("tiny2.yaml", "--tol", "logits=-1"), 3, ">= 0"),
    (("check", "tiny2.yaml", "--tol", "kept_index_block0=0"), 3, "no such output"),
])
def test_cli_errors(run, tmp_path, args, code, needle):
    (tmp_path / "garbage.onnx").write_bytes(b"\x01\x02 not a protobuf at all")
    (tmp_path / "mine.onnx").write_bytes(b"the user's own model")
    res = run(*args)
    assert res.exit_code == code, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not list((tmp_path / "out").rglob("*.onnx"))  # refused before any export


def test_bench_torch_and_ort(run, tmp_path):
    res = run("bench", "tiny2.yaml", "--batch", "1,2", "--iters", "1", "--warmup", "0", "--min-seconds", "0", "--out", "b")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "b/bench.json").read_text())
    assert {(s["backend"], s["batch"]) for s in data["summary"]} == {("ort", 1), ("ort", 2), ("torch", 1), ("torch", 2)}
    assert all(s["flop_ratio"] >= 1.0 and s["dense_img_s"] > 0 for s in data["summary"])
    assert "machine" in data and (tmp_path / "b/bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "SAINT on onnxruntime vs SAINT in PyTorch eager" in res.output


def test_engine_sidecar_and_options_without_tensorrt():
    from pathlib import Path

    from saint_export.tensorrt.engine import EngineOptions
    from saint_export.tensorrt.sidecar import sidecar, sidecar_path
    from saint_export.errors import ConfigError

    from saint_export.models.record import ModelRecord

    schedule = [{"layer": 0, "threshold": 0.75, "k": 5, "gamma": 10.0, "fixed_r": 16}]
    record = ModelRecord({"alias": "vit_b16"}, "random(seed=3)", schedule, 1)
    data = sidecar(EngineOptions(batch=(1, 4, 8), precision="fp16"), [{"name": "pixels", "shape": [-1, 3, 224, 224]}],
                   Path("libsaint_plugins.so"), "10.3.0", record)
    assert ModelRecord.from_json(json.loads(json.dumps(data))["record"], "sidecar") == record
    assert data["model"] == "vit_b16" and data["precision"] == "fp16" and data["tensorrt_version"] == "10.3.0"
    assert data["batch_invariant"] is True and data["plugin"]["namespace"] == "saint"
    assert data["build_options"]["batch"] == (1, 4, 8)
    assert sidecar_path(Path("out/m.plan")) == Path("out/m.plan.json")
    with pytest.raises(ConfigError, match=r"\(--engine-batch min,opt,max\) must satisfy 1 <= min <= opt <= max; got 8,4,1"):
        EngineOptions(batch=(8, 4, 1)).validate()
    with pytest.raises(ConfigError, match="precision"):
        EngineOptions(precision="int8").validate()


def test_check_model_and_onnx_with_dataset(run, tmp_path):
    from PIL import Image

    from saint_export.inputs import synthetic_images

    for c, cls in enumerate(["n01", "n02"]):
        (tmp_path / "ds" / cls).mkdir(parents=True)
        for i, img in enumerate(synthetic_images(3, 96, seed=c)):
            Image.fromarray(img).save(tmp_path / "ds" / cls / f"{i}.png")
    res = run("check", "tiny2.yaml", "--batch", "4", "--dataset", "ds", "--json", "c.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["comparison"]["passed"] and report["comparison"]["rows"][0]["backend"] == "onnxruntime"
    acc = report["dataset"]["accuracy"]
    assert set(acc) == {"torch dense", "torch SAINT", "onnxruntime"} and report["dataset"]["images"] == 6
    assert acc["onnxruntime"] == acc["torch SAINT"]  # same predictions, so the same accuracy
    assert "top-1 torch SAINT" in res.output and "PASS" in res.output

    assert run("export", "tiny2.yaml", "--onnx", "m.onnx", "--quiet").exit_code == 0
    res = run("check", "m.onnx", "--batch", "2", "--tol", "logits=0:0")
    assert res.exit_code == 1 and "FAIL" in res.output and "onnxruntime" in res.output
    res = run("check", "m.plan")  # no such file: said before anything else
    assert res.exit_code == 4 and "does not exist" in res.output
    (tmp_path / "m.plan").write_bytes(b"a plan")
    res = run("check", "m.plan")  # nothing was exported here: the message does not say it was
    assert res.exit_code == 5 and "TensorRT is not installed" in res.output and "ONNX files" not in res.output
    res = run("check", "m.trt.onnx")
    assert res.exit_code == 4 and "TensorRT-lowered" in res.output and "m.onnx" in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    res = run("check", "tiny2.yaml", "--dataset", "nowhere")
    assert res.exit_code == 4 and "not a directory" in res.output
