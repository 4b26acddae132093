"""The README's API example runs as written, and the API's reports are what the commands print and write."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from saint_export import api
from saint_export.cli import main
from saint_export.errors import ConfigError, OutputExistsError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    match = re.search(r"<!-- api-example -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README.md lost its API example"
    return match.group(1)


def test_readme_api_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md (api-example)", "exec"), {})
    printed = capsys.readouterr().out
    assert "validate out/api_demo/vit_t16.onnx" in printed and printed.rstrip().endswith("report: out/api_demo/validation.json")
    written = json.loads((tmp_path / "out/api_demo/validation.json").read_text())
    assert written["passed"] and written["tokens_torch"] == written["tokens_onnx"]


def test_cli_prints_and_writes_the_api_report(tmp_path, monkeypatch):
    """The command is the API call: same table on stdout, same JSON in the file, same exit code."""
    monkeypatch.chdir(tmp_path)
    model = api.ModelSpec("vit_t16", layers="0-1")
    exported = api.export(model, api.ExportOptions(out="a"))
    ours = api.validate(exported.portable, options=api.ValidateOptions(batch=2, json="a/v.json"))
    res = CliRunner().invoke(main, ["validate", "a/vit_t16.onnx", "--batch", "2", "--json", "b.json"])
    assert res.exit_code == ours.exit_code == 0, res.output
    assert res.stdout.replace("b.json", "a/v.json") == ours.table() + "\n"
    assert json.loads(Path("b.json").read_text()) == json.loads(Path("a/v.json").read_text())


def test_api_refuses_before_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("out/vit_t16").mkdir(parents=True)
    Path("out/vit_t16/validation.json").write_text("{}")  # not saint-export's
    with pytest.raises(OutputExistsError):
        api.run(api.ModelSpec("vit_t16"))
    assert not Path("out/vit_t16/vit_t16.onnx").exists()
    with pytest.raises(ConfigError, match="LLaVA options"):
        api.run(api.ModelSpec("vit_t16", llava={"mode": "vit"}))
    with pytest.raises(ConfigError, match="unknown backend"):
        api.bench(api.ModelSpec("vit_t16"), api.BenchOptions(backends=("nope",)))
