"""Generators (U-Net, Attention U-Net) and conditional PatchGAN discriminators.

``keras.layers`` and ``keras.ops`` only: no backend-specific code lives here.
:func:`build_models` is the one place a run's networks are built from its config sections
(training, ``GANBase.from_names``, the exported model and the benchmarks all call it).
"""

from __future__ import annotations

from typing import Any, Mapping

from ggo.models.discriminators import DISCRIMINATORS, build_discriminator, receptive_field
from ggo.models.generators import GENERATORS, build_generator, generator_from_config


def build_models(gen: Mapping[str, Any], disc: Mapping[str, Any], resolution: int) -> tuple[Any, Any]:
    """The generator and discriminator (None for ``disc.name=none``) of the config sections
    ``gen`` and ``disc`` (each ``{"name": ..., **options}``); the discriminator takes as many
    image channels as the generator."""
    generator = generator_from_config(gen, resolution)
    disc_options = {k: v for k, v in disc.items() if k != "name"}
    disc_options.setdefault("in_channels", gen.get("in_channels", 1))
    return generator, build_discriminator(disc["name"], resolution, **disc_options)


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "build_discriminator",
    "build_generator",
    "build_models",
    "generator_from_config",
    "receptive_field",
]
