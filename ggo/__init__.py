"""ggo: adversarial U-Nets for ground-glass opacity segmentation on chest X-rays.

Stages live in their own modules: ``ggo.data`` (reading, preprocessing, splits, cache),
``ggo.models`` (generators, discriminators), ``ggo.losses``, ``ggo.metrics``,
``ggo.training`` (the GAN ``keras.Model`` and its input pipeline), ``ggo.tracking`` (MLflow),
``ggo.train`` (the Hydra entry point), ``ggo.promote`` and ``ggo.predict``.
"""

__version__ = "0.1.0"
