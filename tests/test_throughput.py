"""The training-throughput benchmark builds what a run builds, from the composed config."""

from __future__ import annotations

import pytest

from ggo.bench.throughput import TrainCase, conf_defaults
from ggo.config import compose, to_dict


@pytest.mark.parametrize("gen", ["unet", "attention_unet"])
def test_throughput_defaults_are_the_config_a_run_composes(gen: str) -> None:
    cfg = to_dict(compose([f"gen={gen}"]))
    got = conf_defaults(gen)
    assert got["gen"] == {k: v for k, v in cfg["gen"].items() if k not in ("name", "lung_head")}
    assert got["disc"] == {**{k: v for k, v in cfg["disc"].items() if k != "name"}, "n_layers": 3}
    assert got["batch_size"] == cfg["train"]["batch_size"]
    assert got["loss"] == {k: v for k, v in cfg["loss"].items() if k != "lung"}
    assert got["optimizer"] == {k: cfg["train"][k] for k in ("g_lr", "d_lr", "beta_1")}


def test_throughput_case_builds_the_same_networks_as_a_run() -> None:
    from ggo.bench.throughput import _build_pair
    from ggo.models import build_models

    opts = {**conf_defaults("unet")["gen"], "base_filters": 4, "max_filters": 16, "depth": 3}
    disc = {**conf_defaults("unet")["disc"], "base_filters": 4, "max_filters": 16}
    generator, discriminator = _build_pair(TrainCase(32, "unet", "float32", False), opts, disc)
    ref_gen, ref_disc = build_models({"name": "unet", **opts}, {"name": "patchgan", **disc}, 32)
    assert generator.count_params() == ref_gen.count_params()
    assert discriminator.count_params() == ref_disc.count_params()
