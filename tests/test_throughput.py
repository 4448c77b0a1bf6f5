"""The training-throughput benchmark builds what a run builds, from the composed config."""

from __future__ import annotations

import pytest

from ggo.bench.throughput import TrainCase, case_config, conf_defaults
from ggo.config import compose, to_dict


@pytest.mark.parametrize("gen", ["unet", "attention_unet"])
def test_throughput_defaults_are_the_config_a_run_composes(gen: str) -> None:
    cfg = to_dict(compose([f"gen={gen}"]))
    got = conf_defaults(gen)
    assert got["gen"] == {k: v for k, v in cfg["gen"].items() if k not in ("name", "lung_head", "aux_heads")}
    assert got["disc"] == {**{k: v for k, v in cfg["disc"].items() if k != "name"}, "n_layers": 3}
    assert got["batch_size"] == cfg["train"]["batch_size"]
    assert got["loss"] == {k: v for k, v in cfg["loss"].items() if k not in ("lung", "aux")}
    assert got["optimizer"] == {k: cfg["train"][k] for k in ("g_lr", "d_lr", "beta_1")}


def test_a_rows_config_is_the_run_config_of_its_settings() -> None:
    case = TrainCase(128, "attention_unet", "mixed_bfloat16", True)
    cfg, default = case_config(case, batch_size=4, base_filters=8, disc_base_filters=300)
    run = to_dict(compose(["gen=attention_unet", "preprocess.resolution=128", "train.batch_size=4",
                           "train.precision=mixed_bfloat16", "train.jit_compile=true", "train.backend=tensorflow", "tracking=none",
                           "gen.base_filters=8", "disc.base_filters=300", "disc.max_filters=300"]))  # fmt: skip
    assert cfg == run and default


def test_a_row_whose_set_overrides_change_the_config_is_not_the_default_path() -> None:
    base = TrainCase(64, "unet", "float32", False)
    _, plain = case_config(base, batch_size=2)
    cfg, changed = case_config(TrainCase(64, "unet", "float32", False, overrides=("train.d_steps=2",)), batch_size=2)
    _, same = case_config(TrainCase(64, "unet", "float32", False, overrides=("train.d_steps=1",)), batch_size=2)
    assert plain and same and not changed
    assert cfg["train"]["d_steps"] == 2


def test_a_set_override_outside_the_schema_fails_naming_the_key() -> None:
    with pytest.raises(Exception, match="d_stepz"):
        case_config(TrainCase(64, "unet", "float32", False, overrides=("train.d_stepz=2",)), batch_size=2)


def test_the_bench_builds_and_compiles_the_gan_the_way_a_run_does() -> None:
    from ggo.bench.throughput import _build_gan, synthetic_batch
    from ggo.models import build_models

    overrides = ("gen.depth=3", "gen.base_filters=4", "gen.max_filters=16", "disc.max_filters=16", "train.d_steps=2")
    cfg, _ = case_config(TrainCase(32, "unet", "float32", False, overrides=overrides), batch_size=2, disc_base_filters=4)
    images, _ = synthetic_batch(2, 32)
    gan = _build_gan(cfg, images)
    ref_gen, ref_disc = build_models(cfg["gen"], cfg["disc"], 32)
    assert gan.generator.count_params() == ref_gen.count_params()
    assert gan.discriminator.count_params() == ref_disc.count_params()
    assert gan.d_steps == 2  # a train.* option reached GAN.compile through the run's builder


def test_the_best_mixed_precision_is_bfloat16_only_where_the_cpu_has_it_natively() -> None:
    from ggo.bench.throughput import best_mixed_precision

    assert best_mixed_precision(gpu=True, cpu_flags=[]) == "mixed_float16"
    assert best_mixed_precision(gpu=False, cpu_flags=["avx2", "avx512f", "avx512_bf16"]) == "mixed_bfloat16"
    assert best_mixed_precision(gpu=False, cpu_flags=["avx2", "amx_bf16"]) == "mixed_bfloat16"
    assert best_mixed_precision(gpu=False, cpu_flags=["avx2", "avx512f"]) == "float32"  # bfloat16 emulated
