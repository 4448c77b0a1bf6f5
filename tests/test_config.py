"""The config groups compose, and bad overrides fail before training, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from ggo.config import CONF_DIR, ConfigError, compose, to_dict, typed, validate

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
    assert heads_of(typed(cfg)) == ("lungs", "heart", "consolidation", "devices")
    assert head_weights(typed(cfg)) == (100.0, {"heart": 100.0, "consolidation": 100.0, "devices": 100.0})
    champion = typed(compose(["+sweeps=champion"]))
    assert heads_of(champion) == ("lungs",) and head_weights(champion) == (100.0, {})  # gen.lung_head=true as before


# --- the typed config ---------------------------------------------------------------------------


def test_typed_config_from_a_mapping_takes_the_schema_defaults_and_names_an_unknown_key() -> None:
    from ggo.config import Config, plain
    from ggo.config.schema import GenName

    cfg = typed({"gen": {"name": "attention_unet"}, "train": {"g_lr": 1}})
    assert isinstance(cfg, Config) and cfg.gen.name is GenName.attention_unet and cfg.gen.name == "attention_unet"
    assert cfg.train.g_lr == 1.0 and isinstance(cfg.train.g_lr, float) and cfg.eval == Config().eval
    assert f"{cfg.gen.name}" == "attention_unet"  # a StrEnum formats as its value in messages and tags
    with pytest.raises(ConfigError, match=r"gen: unknown keys \['nme'\]"):
        typed({"gen": {"nme": "unet"}})
    with pytest.raises(ConfigError, match=r"gen.name='resnet': must be one of"):
        typed({"gen": {"name": "resnet"}})
    assert typed({"gen": {"nme": "unet"}}, lenient=True).gen == Config().gen  # a logged config of another version
    composed = typed(compose(["+sweeps=champion"]))
    assert typed(plain(composed)) == composed  # plain at the edges, typed again without loss


def _schema_defaults() -> dict[str, object]:
    import dataclasses

    from ggo.config import Config

    found: dict[str, object] = {}

    def walk(obj: object) -> None:
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value)
            elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
                found.setdefault(f.name, getattr(value, "value", value))

    walk(Config())
    return found


def test_no_library_code_writes_a_schema_default_again() -> None:
    """``.get("threshold", 0.5)`` outside ggo/config/ repeats a default the schema holds: read the
    typed config (or ``ggo.config.section``) instead, so changing a default changes it everywhere."""
    import ast

    schema = _schema_defaults()
    offenders = []
    for path in sorted((CONF_DIR.parent / "ggo").rglob("*.py")):
        if "config" in path.relative_to(CONF_DIR.parent / "ggo").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) == 2 and all(isinstance(a, ast.Constant) for a in node.args)):  # fmt: skip
                key, default = node.args[0].value, node.args[1].value
                if key in schema and default == schema[key] and not isinstance(default, bool):
                    offenders.append(f"{path.name}:{node.lineno} .get({key!r}, {default!r})")
    assert offenders == []
    assert schema["threshold"] == 0.5 and schema["folds"] == 5  # the scan sees the schema
