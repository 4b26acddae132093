"""PNG charts (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

from .io import TOOL_MARK, write_with

PNG_METADATA = {"Software": TOOL_MARK}  # lets a re-run replace its own charts


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, path: str | Path, labels: tuple[str, str, str], force: bool) -> Path:
    """Labels (title, x, y), legend and grid; the PNG written atomically with saint-export's mark."""
    title, xlabel, ylabel = labels
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, metadata=PNG_METADATA), force)
    plt.close(fig)
    return out


def plot_tokens(path: str | Path, title: str, series: dict[str, list[int]], force: bool = False) -> Path:
    """Tokens after each block, one step line per series (e.g. dense, SAINT, calibrated)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, tokens in series.items():
        ax.step(list(range(len(tokens))), tokens, where="mid", label=name, color="gray" if name == "dense" else None)
    ax.set_ylim(0, max(max(v) for v in series.values()) * 1.05)
    return _finish(plt, fig, ax, path, (title, "block", "tokens after the block"), force)


def plot_throughput(path: str | Path, title: str, batches: list[int], series: dict[str, list[float]], force: bool = False) -> Path:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in series.items():
        ax.plot(batches, values, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    return _finish(plt, fig, ax, path, (title, "batch size", "images / s"), force)


def plot_tradeoff(path: str | Path, title: str, curve: list[tuple[float, float]], marks: dict[str, tuple[float, float]],
                  ylabel: str, force: bool = False, *, xlabel: str = "x fewer FLOPs than dense",
                  curve_label: str = "one global tau") -> Path:
    """Fidelity against a cost ratio (FLOPs, or a speedup): the searched curve and named points (default, tuned, ...)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs, ys = zip(*sorted(curve)) if curve else ((), ())
    ax.plot(xs, ys, marker=".", color="gray", label=curve_label)
    for name, (x, y) in marks.items():
        ax.scatter([x], [y], s=60, zorder=3, label=name)
    return _finish(plt, fig, ax, path, (title, xlabel, ylabel), force)
