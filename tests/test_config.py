"""The config groups compose, and bad overrides fail before training, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from ggo.config import CONF_DIR, ConfigError, compose, to_dict, validate

GROUPS = ("gen", "disc", "loss", "preprocess", "data", "train", "tracking")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_every_group_has_the_options_the_design_lists() -> None:
    assert options("gen") == ["attention_unet", "unet"]
    assert options("disc") == ["none", "patchgan", "patchgan_large", "patchgan_small"]
    assert options("loss") == ["bce_l1", "bce_l1_dice", "dice"]
    assert options("preprocess") == ["res128", "res256", "res512"]
    assert options("data") == ["folder", "generalblockchain", "synthetic"]
    assert options("train") == ["default", "gpu", "quick"]
    assert options("tracking") == ["mlflow", "none"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group: str, option: str) -> None:
    cfg = to_dict(compose([f"{group}={option}"]))
    validate(cfg)
    assert set(cfg) >= set(GROUPS)


def test_disc_options_select_the_receptive_field_by_layer_count() -> None:
    layers = {o: to_dict(compose([f"disc={o}"]))["disc"].get("n_layers") for o in ("patchgan_small", "patchgan", "patchgan_large")}
    assert layers == {"patchgan_small": 2, "patchgan": 3, "patchgan_large": 4}


@pytest.mark.parametrize(
    "override,needle",
    [
        ("gen.depth=abc", "gen.depth"),
        ("gen.norm=layer", "gen.norm"),
        ("gen.depht=3", "gen.depht"),
        ("train.precision=fp8", "train.precision"),
        ("gen.aux_heads=[lungs,hearts]", "gen.aux_heads"),
    ],
)
def test_bad_override_fails_at_composition_naming_the_key(override: str, needle: str) -> None:
    with pytest.raises(ConfigCompositionException) as info:
        compose([override])
    text = str(info.value) + str(info.value.__cause__)
    assert needle in text


def test_unknown_group_option_lists_the_valid_ones() -> None:
    with pytest.raises(MissingConfigException) as info:
        compose(["gen=resnet"])
    assert "attention_unet" in str(info.value) and "unet" in str(info.value)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("train.g_lr=-0.001", "train.g_lr"),
        ("train.epochs=0", "train.epochs"),
        ("gen.depth=12", "gen.depth"),
        ("preprocess.resolution=100", "preprocess.resolution"),
        ("data.fold=5", "data.fold"),
        ("loss.l1=0", "loss"),
        ("train.ema=1.0", "train.ema"),
        ("train.ema=-0.5", "train.ema"),
        ("gen.aux_heads=[heart,heart]", "gen.aux_heads"),
        ("gen.aux_heads=[lungs] loss.lung=0", "loss.lung"),
        ("gen.aux_heads=[devices] loss.aux.devices=0", "loss.aux.devices"),
        ("loss.aux.heart=-1", "loss.aux.heart"),
    ],
)
def test_out_of_range_values_raise_config_error_naming_the_key(override: str, needle: str) -> None:
    cfg = to_dict(compose(override.split() + (["loss=bce_l1"] if override.startswith("loss") else [])))
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        validate(cfg)


def test_config_dir_is_found_from_any_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert to_dict(compose(["gen=attention_unet"]))["gen"]["name"] == "attention_unet"


def test_the_champion_recipe_with_aux_heads_composes_lungs_first_and_weights_each_head() -> None:
    from ggo.training.experiment import head_weights, heads_of

    cfg = to_dict(compose(["+sweeps=champion", "preprocess=res128", "train.precision=float32",
                           "gen.aux_heads=[lungs,heart,consolidation,devices]"]))  # fmt: skip
    validate(cfg)
    assert cfg["gen"]["lung_head"] is True and cfg["preprocess"]["resolution"] == 128
    assert heads_of(cfg) == ("lungs", "heart", "consolidation", "devices")
    assert head_weights(cfg) == (100.0, {"heart": 100.0, "consolidation": 100.0, "devices": 100.0})
    plain = to_dict(compose(["+sweeps=champion"]))
    assert heads_of(plain) == ("lungs",) and head_weights(plain) == (100.0, {})  # gen.lung_head=true as before
