"""The package's layers, bottom first, declared here once: a module may import its own layer or
lower ones, never a higher one; no import circles; the package's own modules are imported at
module top (a function-level import hides an edge). A module belongs to the longest prefix listed."""

import ast
import functools
from pathlib import Path

import pytest

LAYERS = [
    ["errors", "version", "io", "onnx_file", "polygraphy_log", "plots"],
    ["reference"],
    ["models", "inputs"],
    ["export"],
    ["runtimes", "tensorrt"],
    ["verify", "schedules", "bench", "bench_llava", "generate"],
    ["tensorrt.triton", "serve"],
    ["api", ""],  # "" is saint_export/__init__.py: the package's facade
    ["cli", "__main__"],
]
ROOT = Path(__file__).resolve().parents[1] / "saint_export"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    matches = [(len(p), i) for i, layer in enumerate(LAYERS) for p in layer if module == p or p and module.startswith(p + ".")]
    assert matches, f"saint_export.{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def own_imports(path: Path):
    """(imported module, line, at module top) for every import of the package's own modules."""
    name = [p for p in module_name(path).split(".") if p]
    package = name if path.name == "__init__.py" else name[:-1]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for s in tree.body if isinstance(s, ast.If) and "TYPE_CHECKING" in ast.unparse(s.test) for n in ast.walk(s)}
    top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try)) for n in s.body}
    for node in (n for n in ast.walk(tree) if id(n) not in typing_only):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}".strip(".")
                yield (target if (ROOT / target.replace(".", "/")).with_suffix(".py").exists() or (ROOT / target.replace(".", "/")).is_dir()
                       else base), node.lineno, id(node) in top
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
            for name in [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]:
                if name == "saint_export" or name.startswith("saint_export."):
                    yield name.removeprefix("saint_export").lstrip("."), node.lineno, id(node) in top


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
EDGES = {m: {t for t, _, _ in own_imports(p)} - {m} for m, p in MODULES.items()}
OPTIONAL = ("tensorrt", "transformers", "openvino")  # heavy optional dependencies


@functools.cache
def needs_optional(module: str) -> bool:
    """The module imports an optional dependency at its top, itself or through one of ours: such a
    module is imported where it is used, so the package imports without the dependency."""
    body = ast.parse(MODULES[module].read_text()).body
    body += [s for n in body if isinstance(n, (ast.If, ast.Try)) for s in n.body]
    heavy = [a.name for n in body if isinstance(n, ast.Import) for a in n.names]
    heavy += [n.module or "" for n in body if isinstance(n, ast.ImportFrom) and not n.level]
    return any(h.split(".")[0] in OPTIONAL for h in heavy) or any(
        needs_optional(t) for t, _, top in own_imports(MODULES[module]) if top and t in MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_and_sit_at_the_top(module):
    for target, line, at_top in own_imports(MODULES[module]):
        where = f"saint_export/{MODULES[module].relative_to(ROOT)}:{line}"
        assert at_top or needs_optional(target), f"{where}: saint_export.{target} imported inside a function or class: move it to the top"
        assert layer_of(target) <= layer_of(module), f"{where}: upward import of saint_export.{target} (layer {layer_of(target)} > {layer_of(module)})"


def test_no_import_circles():
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(EDGES.get(m, ())):
            assert state.get(t) != 1, "import circle: " + " -> ".join(path + [m, t])
            if t not in state:
                visit(t, path + [m])
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m, [])


MAX_FILE_LINES, MAX_FUNCTION_LINES, MAX_POSITIONAL = 400, 60, 6


@pytest.mark.parametrize("module", sorted(MODULES))
def test_small_files_and_functions(module):
    """No file over 400 lines, no function over 60, none with more than 6 positional parameters
    (self/cls not counted; keyword-only parameters are named at every call, so they do not count)."""
    path = MODULES[module]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_FILE_LINES, f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
            assert node.end_lineno - node.lineno + 1 <= MAX_FUNCTION_LINES, f"{where}: {node.end_lineno - node.lineno + 1} lines"
            positional = [a.arg for a in node.args.posonlyargs + node.args.args if a.arg not in ("self", "cls")]
            assert len(positional) <= MAX_POSITIONAL, f"{where}: {len(positional)} positional parameters"
