"""tools/mutate_kernels.py as a test: every planted kernel bug (missing barriers, a shortened warp
reduction, a guard before a shuffle, half a row copied, off-by-one tile strides, undersized dynamic
shared memory) must make the CPU kernel grid fail. About 2 minutes on 2 cores (9 builds of one file)."""

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "mutate_kernels.py"


def test_every_mutant_is_caught(tmp_path, capsys):
    import kernel_harness as kernels

    spec = importlib.util.spec_from_file_location("mutate_kernels", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    try:
        status = tool.main(["--build-dir", str(tmp_path)])
    except kernels.MissingDependencyError as exc:
        pytest.skip(f"cannot build the CPU kernels: {exc}")
    report = capsys.readouterr().out
    print(report)
    assert status == 0, report
