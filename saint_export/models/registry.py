"""Model registry: an alias (``vit_b16``, ``vit_h14.aggressive``), a YAML path or any timm
ViT name resolves to a ModelConfig. ``list_models`` takes shell-style wildcards."""

from __future__ import annotations

import difflib
import fnmatch
import os
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError
from .config import ModelConfig, config_from_mapping, load_config_file
from .hf import hf_config_for

ENV_CONFIG_DIRS = "SAINT_EXPORT_CONFIGS"  # extra config folders, os.pathsep-separated


def config_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get(ENV_CONFIG_DIRS, "").split(os.pathsep) if p]
    package = Path(__file__).resolve().parent.parent
    packaged = package / "configs"  # wheel installs
    source = package.parent / "configs"  # source checkout / editable
    dirs += [d for d in (packaged, source) if d.is_dir()]
    return dirs


@lru_cache(maxsize=None)
def _load_all(dirs: tuple[Path, ...]) -> dict[str, ModelConfig]:
    found: dict[str, ModelConfig] = {}
    for d in dirs:
        for path in sorted(d.glob("*.yaml")):
            cfg = load_config_file(path)
            found.setdefault(cfg.alias, cfg)
    return found


def configs() -> dict[str, ModelConfig]:
    return _load_all(tuple(config_dirs()))


def aliases(include_variants: bool = True) -> list[str]:
    names = []
    for alias, cfg in configs().items():
        names.append(alias)
        if include_variants:
            names += [f"{alias}.{v}" for v in cfg.variants]
    return sorted(names)


def list_models(pattern: str = "*") -> list[ModelConfig]:
    """Configs (variants included) whose alias or timm name matches ``pattern``."""
    out = []
    for name in aliases():
        cfg = resolve(name)
        if fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(cfg.source_name, pattern):
            out.append(cfg)
    return out


def _from_timm(name: str) -> ModelConfig | None:
    import timm

    arch = name.split(".")[0]
    if not timm.is_model(arch):
        return None
    from timm.models import get_pretrained_cfg

    pcfg = get_pretrained_cfg(name, allow_unregistered=True)
    data = {"alias": name, "library": "timm", "name": name, "description": f"timm model {name} (no saint-export config)"}
    if pcfg is not None:
        data["input_size"] = int(pcfg.input_size[-1])
        data["mean"] = list(pcfg.mean)
        data["std"] = list(pcfg.std)
        data["crop_pct"] = float(pcfg.crop_pct)
    return config_from_mapping(data, f"timm:{name}")


def suggestions(name: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, aliases(), n=n, cutoff=0.5)


def resolve(name: str) -> ModelConfig:
    """Alias, ``alias.variant``, a ``.yaml`` path, ``hf:<hub id or folder>``, a local transformers
    folder (with config.json), or a timm model name -> ModelConfig."""
    if name.startswith("hf:") or (Path(name) / "config.json").is_file():
        return hf_config_for(name.removeprefix("hf:"))
    table = configs()
    if name in table:
        return table[name]
    base, _, variant = name.partition(".")
    if variant and base in table and variant in table[base].variants:
        return table[base].variant(variant)
    if name.endswith((".yaml", ".yml")) and Path(name).exists():
        return load_config_file(Path(name))
    cfg = _from_timm(name)
    if cfg is not None:
        return cfg
    close = suggestions(name)
    hint = f"; did you mean {', '.join(close)}?" if close else "; run 'saint-export list' to see them"
    raise ConfigError(f"unknown model {name!r} (not a saint-export alias, config file or timm model){hint}")
