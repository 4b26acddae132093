"""list, inspect and the error paths, through click's runner."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from saint_export.cli import main


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def invoke(*args):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_help_lists_commands_and_exit_codes(run):
    res = run("--help")
    assert res.exit_code == 0
    assert "inspect" in res.output and "list" in res.output and "Exit codes" in res.output


def test_list_with_wildcards(run):
    res = run("list")
    assert res.exit_code == 0 and "vit_h14" in res.output and "deit3_h14" in res.output
    res = run("list", "deit*")
    assert "deit_s" in res.output and "vit_b16 " not in res.output
    res = run("list", "nothing*")
    assert res.exit_code == 3 and "no model matches" in res.output


def test_inspect_vit_b16_synthetic_writes_under_out_and_reruns(run, tmp_path):
    res = run("inspect", "vit_b16", "--synthetic")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out" / "vit_b16" / "inspect.json").read_text())
    blocks = report["blocks"]
    assert len(blocks) == 12 and blocks[0]["tokens_in"] == 197
    assert [b["prunes"] for b in blocks] == [True] * 6 + [False] * 6
    assert all(b["r"] == 0 for b in blocks[6:])
    assert sum(b["r"] for b in blocks) > 0
    assert report["flops_saint"] < report["flops_dense"]
    assert set(report["agreement"]) == {"top1", "kl"}  # a classifier
    png = tmp_path / "out" / "vit_b16" / "tokens.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "GFLOPs/image" in res.output
    assert not list(tmp_path.glob("*.png"))  # nothing in the current directory
    again = run("inspect", "vit_b16", "--synthetic")  # the same command again replaces its own files
    assert again.exit_code == 0, again.output


def test_inspect_backbone_reports_embedding_cosine(run, tmp_path):
    res = run("inspect", "dinov2_s_reg4", "--synthetic", "--layers", "0-1", "--threshold", "0.6")
    assert res.exit_code == 0, res.output
    agreement = json.loads((tmp_path / "out" / "dinov2_s_reg4" / "inspect.json").read_text())["agreement"]
    assert set(agreement) == {"cosine", "cosine_min", "nn"} and -1 <= agreement["cosine_min"] <= agreement["cosine"] <= 1
    assert "cosine" in res.output and "top-1" not in res.output


def test_inspect_user_files_are_never_replaced_without_force(run, tmp_path):
    img = (torch.arange(64 * 64 * 3) % 251).reshape(64, 64, 3).to(torch.uint8).numpy()
    Image.fromarray(img).save(tmp_path / "x.png")
    args = ("inspect", "vit_t16", "--image", "x.png", "--layers", "0-1", "--threshold", "0.6", "--plot", "p.png")
    assert run(*args).exit_code == 0
    assert run(*args).exit_code == 0  # p.png is saint-export's own chart: replaced
    res = run(*args[:-1], "x.png")  # the user's image as the plot target
    assert res.exit_code == 6 and "not written by saint-export" in res.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png")), img)
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    res = run(*args, "--json", "notes.json")
    assert res.exit_code == 6 and json.loads((tmp_path / "notes.json").read_text()) == {"mine": 1}
    assert run(*args, "--json", "notes.json", "--force").exit_code == 0


def test_unwritable_output_fails_at_once(run):
    import time

    start = time.perf_counter()
    res = run("export", "vit_s16", "--out", "/proc/forbidden")
    assert res.exit_code == 4 and "cannot write into /proc/forbidden" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert time.perf_counter() - start < 20  # before tracing (which takes ~26 s here); generous for slow CI


@pytest.mark.parametrize("args,code,needle", [
    (("inspect", "vit_b61", "--synthetic"), 3, "did you mean"),
    (("inspect", "vit_t16", "--threshold", "1.5", "--synthetic"), 3, "threshold must be"),
    (("inspect", "vit_t16", "--k", "0", "--synthetic"), 3, "k must be"),
    (("inspect", "vit_t16", "--image", "missing.png"), 4, "does not exist"),
    (("inspect", "vit_t16", "--checkpoint", "missing.pth"), 4, "does not exist"),
    (("inspect", "vit_t16", "--layers", "0-40", "--synthetic"), 3, "outside"),
    (("inspect", "vit_h14", "--weights", "pretrained"), 5, "pretrained unavailable"),
    (("inspect", "vit_t16", "--weights", "pretrained"), 5, "this needs a network"),
])
def test_errors_are_one_line_with_exit_codes(run, args, code, needle):
    res = run(*args)
    assert res.exit_code == code, res.output
    assert needle in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_unreadable_image_and_checkpoint(run, tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    res = run("inspect", "vit_t16", "--image", "bad.png")
    assert res.exit_code == 4 and "cannot read image" in res.output
    (tmp_path / "bad.pth").write_bytes(b"\x00garbage")
    res = run("inspect", "vit_t16", "--checkpoint", "bad.pth")
    assert res.exit_code == 4 and "cannot read checkpoint" in res.output


def test_checkpoint_round_trip(run, tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save({"model": model.state_dict()}, tmp_path / "w.pth")
    for ckpt in ("w.safetensors", "w.pth"):
        res = run("inspect", "vit_t16", "--checkpoint", ckpt, "--synthetic", "--json", f"{ckpt}.json", "--plot", f"{ckpt}.png")
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / f"{ckpt}.json").read_text())["weights"] == ckpt
    wrong = timm.create_model("vit_small_patch16_224", pretrained=False)
    save_file(wrong.state_dict(), str(tmp_path / "wrong.safetensors"))
    res = run("inspect", "vit_t16", "--checkpoint", "wrong.safetensors")
    assert res.exit_code == 4 and "does not" in res.output


def test_atomic_writes_are_as_readable_as_plain_files(tmp_path):
    """Reports, engines and Triton configs go through a temporary file (mkstemp makes it 0600); the
    result must get the umask's mode like any file, or a server running as another user cannot read it."""
    import os

    from saint_export.io import write_json, write_text

    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        for path in (write_json(tmp_path / "r.json", {"a": 1}), write_text(tmp_path / "c.pbtxt", "x")):
            assert path.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
