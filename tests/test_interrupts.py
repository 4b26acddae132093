"""Full disks, SIGTERM and SIGKILL leftovers: the writer in saint_export/io.py turns ENOSPC/EROFS into one
line (exit 4) and removes its staging entry; SIGTERM cleans up like SIGINT (exit 143); a run removes the
staging entries of its own outputs that a killed run left behind."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from saint_export.cli import main
from saint_export.errors import InputError
from saint_export.io import staging_prefix, sweep_stale_staging, write_json

from helpers import TINY_YAML

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny2.yaml").write_text(TINY_YAML)
    return lambda *args: CliRunner().invoke(main, list(args), catch_exceptions=False)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part"))


def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_during_export_is_one_line_and_leaves_nothing(run, tmp_path, monkeypatch):
    import saint_export.export.pipeline as pipeline

    def half_then_full(ir_model, path, external):
        path.write_bytes(b"half a model")
        full_disk()

    monkeypatch.setattr(pipeline, "_save", half_then_full)
    res = run("export", "tiny2.yaml", "--out", "o", "--quiet")
    assert res.exit_code == 4, res.output
    assert res.output.strip() == "error: cannot write o/tiny2.onnx: No space left on device"
    assert (tmp_path / "o").is_dir() and list((tmp_path / "o").iterdir()) == []  # no staging, no half model


def test_full_disk_during_triton_is_one_line_and_keeps_the_old_model(run, tmp_path, monkeypatch):
    import saint_export.tensorrt.triton as triton

    assert run("export", "tiny2.yaml", "--onnx", "m.onnx", "--quiet").exit_code == 0
    assert run("triton", "m.onnx", "--repo", "repo").exit_code == 0
    before = (tmp_path / "repo/tiny2/config.pbtxt").read_text()
    monkeypatch.setattr(triton.shutil, "copy2", full_disk)
    res = run("triton", "m.onnx", "--repo", "repo", "--instances", "2")
    assert res.exit_code == 4 and res.output.strip() == "error: cannot write repo/tiny2: No space left on device", res.output
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["tiny2"]  # the staging folder is gone
    assert (tmp_path / "repo/tiny2/config.pbtxt").read_text() == before


def test_read_only_disk_in_the_one_writer(tmp_path, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Path, "write_text", read_only)
    with pytest.raises(InputError, match=r"cannot write .*r\.json: Read-only file system"):
        write_json(tmp_path / "r.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_stale_staging_of_a_killed_run_is_swept_and_a_live_one_kept(run, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".tiny2.onnx.{dead.pid}-abcd1234.part"  # SIGKILL mid-write left a whole model here
    stale.mkdir()
    (stale / "tiny2.onnx").write_bytes(b"x" * 1000)
    old_style = out / ".tiny2.trt.onnx.k2j4_x9q.part"
    old_style.write_bytes(b"y")
    live = out / f".tiny2.onnx.{os.getppid()}-live0000.part"  # another run, still writing
    live.mkdir()
    mine = out / ".mine.onnx.1-abcd.part"  # not an output of this run
    mine.mkdir()
    res = run("export", "tiny2.yaml", "--out", "o", "--quiet")
    assert res.exit_code == 0, res.output
    assert not stale.exists() and not old_style.exists()
    assert live.is_dir() and mine.is_dir()
    assert sweep_stale_staging(out / "tiny2.onnx") == []  # nothing more to remove


SLOW_EXPORT = """
import sys, time
import saint_export.export.pipeline as pipeline
save = pipeline._save
def slow_save(*args):
    files = save(*args)
    print("STAGED", file=sys.stderr, flush=True)
    time.sleep(60)  # a slow disk: the signal arrives while the staging folder exists
    return files
pipeline._save = slow_save
from saint_export.cli import main
main(["export", "tiny2.yaml", "--out", "o"])
"""


def test_sigterm_mid_export_cleans_up_and_exits_143(tmp_path):
    (tmp_path / "tiny2.yaml").write_text(TINY_YAML)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EXPORT], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("STAGED"):
            break
    assert leftovers(tmp_path / "o"), lines  # the staging folder exists when the signal is sent
    proc.send_signal(signal.SIGTERM)
    start = time.perf_counter()
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 143, "".join(lines) + rest
    assert time.perf_counter() - start < 10
    assert rest.strip().splitlines()[-1] == "terminated (SIGTERM); nothing half-written is left"
    assert "Traceback" not in rest
    assert leftovers(tmp_path / "o") == [] and not (tmp_path / "o/tiny2.onnx").exists()


def test_staging_names_carry_the_writer_pid():
    assert staging_prefix("m.onnx") == f".m.onnx.{os.getpid()}-"
