"""Configs, aliases, variants, wildcards, schedules and their validation."""

import pytest

from saint_export.models.config import config_from_mapping, load_config_file
from saint_export.errors import ConfigError, InputError
from saint_export.models.registry import aliases, list_models, resolve
from saint_export.reference.schedule import build_schedule, parse_layers

REQUIRED = ["vit_s16", "vit_b16", "vit_l16", "vit_h14", "deit_s", "deit_b", "deit3_h14"]


def test_required_aliases_exist_and_build_their_schedule():
    import timm

    for alias in REQUIRED:
        cfg = resolve(alias)
        assert timm.is_model(cfg.name.split(".")[0]), cfg.name
        depth = {"vit_s16": 12, "vit_b16": 12, "vit_l16": 24, "vit_h14": 32, "deit_s": 12, "deit_b": 12, "deit3_h14": 32}[alias]
        sched = build_schedule(cfg.schedule, depth)
        assert sched.layers == list(range(depth // 2))  # published: first half of the blocks
        assert all(r.threshold == 0.75 and r.k == 5 and r.gamma == 10.0 for _, r in sched.rules)


def test_headline_model_is_vit_h14_at_224():
    cfg = resolve("vit_h14")
    assert "huge_patch14" in cfg.name and cfg.input_size == 224


def test_variants_and_wildcards():
    agg = resolve("vit_h14.aggressive")
    assert agg.alias == "vit_h14.aggressive" and agg.schedule["threshold"] < 0.75
    assert "vit_h14.aggressive" in aliases()
    names = [c.alias for c in list_models("vit_h*")]
    assert "vit_h14" in names and "vit_b16" not in names
    assert [c.alias for c in list_models("*deit3_huge*")] == ["deit3_h14"]


def test_any_timm_vit_by_name():
    cfg = resolve("vit_tiny_patch16_384.augreg_in21k_ft_in1k")
    assert cfg.input_size == 384 and cfg.mean == (0.5, 0.5, 0.5)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ConfigError, match="did you mean.*vit_b16"):
        resolve("vit_b61")


def test_bad_fields_are_named(tmp_path):
    with pytest.raises(ConfigError, match="'name'"):
        config_from_mapping({"alias": "x"}, "x.yaml")
    with pytest.raises(ConfigError, match=r"unknown field.*colour"):
        config_from_mapping({"alias": "x", "timm_name": "vit_tiny_patch16_224", "colour": 1}, "x.yaml")
    with pytest.raises(ConfigError, match="schedule.tau"):
        config_from_mapping({"alias": "x", "timm_name": "t", "schedule": {"tau": 0.5}}, "x.yaml")
    with pytest.raises(ConfigError, match="'mean'"):
        config_from_mapping({"alias": "x", "timm_name": "t", "mean": [1, 2]}, "x.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("alias: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    with pytest.raises(InputError):
        load_config_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize("spec,match", [
    ({"threshold": 1.5}, "threshold must be a number in \\[-1, 1\\]"),
    ({"threshold": -1.01}, "threshold"),
    ({"k": 0}, "k must be an integer >= 1"),
    ({"gamma": float("inf")}, "gamma"),
    ({"fixed_r": -2}, "fixed_r"),
    ({"layers": [0, 40]}, "outside the model's blocks"),
    ({"layers": "zero"}, "layers"),
    ({"layers": [0, 1], "threshold": [0.7]}, "per-layer list has 1 entries for 2"),
])
def test_schedule_validation(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_schedule(spec, 12)


def test_layer_specs():
    assert parse_layers("first_half", 12) == [0, 1, 2, 3, 4, 5]
    assert parse_layers("0-2,7", 12) == [0, 1, 2, 7]
    assert parse_layers("none", 12) == []
    assert parse_layers("all", 3) == [0, 1, 2]


def test_library_and_name_with_the_older_spelling_still_loading():
    new = config_from_mapping({"alias": "x", "library": "transformers", "name": "google/vit-base-patch16-224"}, "x.yaml")
    old = config_from_mapping({"alias": "x", "hf_name": "google/vit-base-patch16-224"}, "x.yaml")
    assert new == old and new.is_hf and new.source_name == "hf:google/vit-base-patch16-224"
    assert config_from_mapping({"alias": "x", "name": "vit_tiny_patch16_224"}, "x.yaml") == config_from_mapping(
        {"alias": "x", "timm_name": "vit_tiny_patch16_224"}, "x.yaml")  # library defaults to timm
    with pytest.raises(ConfigError, match="'library' must be one of"):
        config_from_mapping({"alias": "x", "library": "keras", "name": "m"}, "x.yaml")
    with pytest.raises(ConfigError, match="'library' goes with 'name'"):
        config_from_mapping({"alias": "x", "library": "timm", "timm_name": "m"}, "x.yaml")
    with pytest.raises(ConfigError, match="exactly one"):
        config_from_mapping({"alias": "x", "name": "m", "timm_name": "m"}, "x.yaml")
