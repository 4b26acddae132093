"""The ``saint-export`` command line: argument parsing only; the work is in the stage packages."""

from __future__ import annotations

import difflib
import os

import click

from ..errors import ConfigError
from ..models.registry import resolve
from .options import EXIT_CODE_HELP


class ModelFirstGroup(click.Group):
    """``saint-export MODEL ...`` runs the hidden ``run`` command; known names are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            mistyped = self.mistyped_command(args[0])
            if mistyped:
                click.echo(f"error: no such command {args[0]!r}; did you mean {mistyped!r}? (or a model: "
                           "'saint-export list')", err=True)
                ctx.exit(2)
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def mistyped_command(self, word: str) -> str | None:
        """The command ``word`` looks like a typo of, unless it is a file or a model name."""
        visible = [name for name, command in self.commands.items() if not command.hidden]
        close = difflib.get_close_matches(word, visible, n=1, cutoff=0.7)
        if not close or os.path.exists(word):
            return None
        try:
            resolve(word)
        except ConfigError:
            return close[0]
        return None


@click.group(cls=ModelFirstGroup, epilog=EXIT_CODE_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="saint-export")
def main() -> None:
    """Export SAINT-pruned Vision Transformers to ONNX and TensorRT, and prove they still
    answer like PyTorch.

    \b
    saint-export MODEL [OPTIONS]      export + validate (see 'saint-export run --help')
    saint-export list [PATTERN]       model aliases (wildcards: 'vit_*')
    saint-export inspect MODEL        tokens per layer, r, FLOPs dense vs SAINT
    saint-export calibrate MODEL      freeze the schedule into static counts (fixed_r)
    saint-export LLAVA --vision       export + validate a LLaVA vision encoder
    saint-export generate LLAVA       dense and SAINT answers side by side
    saint-export serve REPO|ONNX      a real Triton server on loopback (--bench: load table)

    MODEL is an alias from 'saint-export list' (variants as alias.variant), a config
    .yaml path, or any timm ViT name.
    """


from . import deploy, export, llava, models, schedules, serve, verify  # noqa: E402  (registers the commands on main)

for _module in (models, export, verify, schedules, deploy, llava, serve):
    for _command in _module.COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
