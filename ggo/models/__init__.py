"""Generators (U-Net, Attention U-Net) and conditional PatchGAN discriminators.

``keras.layers`` and ``keras.ops`` only: no backend-specific code lives here.
"""

from ggo.models.discriminators import DISCRIMINATORS, build_discriminator, receptive_field
from ggo.models.generators import GENERATORS, build_generator

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "build_discriminator",
    "build_generator",
    "receptive_field",
]
