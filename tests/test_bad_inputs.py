"""Bad inputs as a new user gives them (issue 23): one line, the documented exit code, refused before any
work, nothing left behind. Each case asserts the exit code and the line."""

import json
import struct
import time
import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from saint_export.cli import main
from saint_export.inputs import load_image, synthetic_images

from helpers import TINY_YAML


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny2.yaml").write_text(TINY_YAML)

    def invoke(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def one_line(res, code: int, needle: str) -> None:
    assert res.exit_code == code, res.output
    assert needle in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output, res.output


def png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header announces width x height (Pillow refuses it on open, before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b""))


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    img = load_image(tmp_path / "deep.png")
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], np.round(ramp / 257.0).astype(np.uint8))  # 65535 -> 255, 257 -> 1
    assert (img == 255).mean() < 0.01  # PIL's convert("RGB") made 99.6 % of them 255


def test_float_image_in_0_1_is_scaled(tmp_path):
    values = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    img = load_image(tmp_path / "f.tif")
    assert img[0, 0, 0] == 0 and img[-1, -1, 0] == 255 and len(np.unique(img)) > 200


def test_decompression_bomb_names_the_file_and_the_limit(run, tmp_path):
    png_header_only(tmp_path / "huge.png", 14000, 14000)
    res = run("inspect", "tiny2.yaml", "--image", "huge.png")
    one_line(res, 4, "cannot read image huge.png")
    assert str(Image.MAX_IMAGE_PIXELS) in res.output and "196000000 pixels" in res.output
    assert not (tmp_path / "out").exists()  # a failed inspect leaves no empty --out folder


def test_truncated_image_is_one_line_naming_it(run, tmp_path):
    Image.fromarray(synthetic_images(1, 96)[0]).save(tmp_path / "t.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "t.jpg").read_bytes()[:300])
    one_line(run("inspect", "tiny2.yaml", "--image", "cut.jpg"), 4, "cannot read image cut.jpg")


def dataset_with_a_broken_jpeg(root):
    for c, cls in enumerate(["n01", "n02"]):
        (root / cls).mkdir(parents=True)
        for i, img in enumerate(synthetic_images(2, 96, seed=c)):
            Image.fromarray(img).save(root / cls / f"{i}.jpg")
    good = (root / "n02" / "0.jpg").read_bytes()
    (root / "n02" / "broken.jpg").write_bytes(good[: len(good) // 3])  # truncated mid-scan


def test_check_dataset_skips_counts_and_lists_unreadable_images(run, tmp_path):
    dataset_with_a_broken_jpeg(tmp_path / "ds")
    res = run("check", "tiny2.yaml", "--batch", "2", "--dataset", "ds", "--json", "c.json")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "c.json").read_text())["dataset"]
    assert report["images"] == 4 and len(report["unreadable"]) == 1 and "broken.jpg" in report["unreadable"][0]
    assert "1 unreadable image(s) skipped" in res.output and "broken.jpg" in res.output
    res = run("check", "tiny2.yaml", "--batch", "2", "--dataset", "ds", "--on-bad-image", "fail")
    assert res.exit_code == 4 and "broken.jpg" in res.output.strip().splitlines()[-1], res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("args,code,needle", [
    (("tune", "tiny2.yaml", "--target-flops", "nan"), 3, "--target-flops must be a finite number > 1; got nan"),
    (("tune", "tiny2.yaml", "--target-flops", "0"), 3, "--target-flops must be a finite number > 1; got 0"),
    (("tune", "tiny2.yaml", "--target-flops", "-2"), 3, "--target-flops must be"),
    (("tune", "tiny2.yaml", "--target-flops", "inf"), 3, "--target-flops must be"),
    (("tune", "tiny2.yaml", "--target-speedup", "1"), 3, "--target-speedup must be"),
    (("generate", "llava15_small", "--llm-threshold", "5"), 3, "--llm-threshold must be a finite number in [-1, 1]; got 5"),
    (("generate", "llava15_small", "--llm-threshold", "nan"), 3, "--llm-threshold must be"),
    (("bench", "tiny2.yaml", "--min-seconds", "nan"), 3, "--min-seconds must be"),
    (("bench", "tiny2.yaml", "--min-seconds", "-1"), 3, "--min-seconds must be a finite number in [0, 86400]; got -1"),
    (("calibrate", "tiny2.yaml", "--percentile", "nan"), 3, "--percentile must be"),
    (("export", "tiny2.yaml", "--gamma", "inf"), 3, "--gamma must be a finite number"),
    (("export", "tiny2.yaml", "--threshold", "nan"), 3, "--threshold must be"),
    (("export", "tiny2.yaml", "--seed", "-1"), 3, "--seed must be"),
    (("export", "tiny2.yaml", "--fixed-r", "-2"), 3, "--fixed-r must be"),
    (("inspect", "resnet50"), 3, "resnet50 is a ResNet, not a ViT"),
    (("inspect", "resnet.yaml"), 3, "resnet18 is a ResNet, not a ViT"),
    (("inspect", "depth0.yaml"), 3, "has no transformer blocks; model_kwargs depth must be >= 1"),
    (("exprot", "tiny2.yaml"), 2, "no such command 'exprot'; did you mean 'export'?"),
    (("bench", "tiny2.yaml", "--images", "empty"), 4, "--images: no images"),
    (("tiny2.yaml", "--images", "empty"), 4, "--images: no images"),
    (("inspect", "tiny2.yaml", "--images", "empty"), 4, "--images: no images"),
    (("check", "none.plan"), 4, "engine none.plan does not exist"),
    (("bench", "tiny2.yaml", "--backend", "trt"), 5, "TensorRT is not installed"),
])
def test_refused_at_once_in_one_line(run, tmp_path, args, code, needle):
    (tmp_path / "empty").mkdir()
    (tmp_path / "resnet.yaml").write_text("alias: rn\ntimm_name: resnet18\n")
    (tmp_path / "depth0.yaml").write_text(TINY_YAML.replace("depth: 2", "depth: 0"))
    start = time.perf_counter()
    res = run(*args)
    one_line(res, code, needle)
    assert "ONNX files" not in res.output  # nothing was exported, and no message says it was
    assert time.perf_counter() - start < 5  # before any export or search (the model is built at most)
    assert not (tmp_path / "out").exists()


def test_device_cuda_without_a_gpu_fails_before_any_work(run, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    for args in (("tiny2.yaml", "--device", "cuda"), ("bench", "tiny2.yaml", "--device", "cuda")):
        start = time.perf_counter()
        one_line(run(*args), 5, "--device cuda: no CUDA GPU is visible to PyTorch")
        assert time.perf_counter() - start < 2 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["inspect", "calibrate", "tune", "bench"])
def test_a_failed_command_leaves_no_empty_out_folder(run, tmp_path, command):
    extra = ("--target-flops", "2") if command == "tune" else ()
    res = run(command, "tiny2.yaml", "--out", "o/deep", "--checkpoint", "missing.pth", *extra)
    one_line(res, 4, "checkpoint missing.pth does not exist")
    assert not (tmp_path / "o").exists()


def test_another_tools_onnx_is_refused_in_one_line(run, tmp_path):
    import onnx
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", 1, [1, 4])],
                              [helper.make_tensor_value_info("y", 1, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "other.onnx"))
    for command in ("validate", "check"):
        res = run(command, "other.onnx", "--model", "tiny2.yaml")
        one_line(res, 4, "other.onnx does not look like an export of tiny2: it has input x [1, 4], output y [1, 4]")


def test_an_alias_never_becomes_a_path():
    from saint_export.api.paths import output_stem

    assert output_stem("..") == "__" and output_stem(".") == "_" and output_stem("a/b") == "a_b"
    assert output_stem("vit_b16.augreg") == "vit_b16.augreg"
