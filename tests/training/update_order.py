"""A known answer that tells the two adversarial update orders apart, on this process's backend.

One train step from the same weights, with plain SGD (an update is -lr x gradient) and networks
without normalisation (no batch statistics), for each ``adversarial_update`` and a discriminator
learning rate of 0 or 1:

- ``same_pass`` takes the generator's gradient through the discriminator BEFORE its update, so its
  generator update does not depend on the discriminator's learning rate, and equals
  ``sequential``'s with a frozen discriminator (``d_lr=0``: there the updated D is the old one);
- ``sequential`` takes it through the UPDATED discriminator, so ``d_lr`` moves it;
- both update the discriminator alike (the same loss on the same prediction).

Imported by test_gan.py (TensorFlow) and by test_jax_backend.py's JAX script, which prints the
answers on its ``RESULT`` line; run as a script, it prints them the same way.
"""

from __future__ import annotations

import json

import numpy as np


def _distance(a: list, b: list) -> float:
    return float(np.sqrt(sum(float(((np.asarray(x) - np.asarray(y)) ** 2).sum()) for x, y in zip(a, b))))


def update_order_answers(seed: int = 0) -> dict[str, float]:
    """Distances between the weights after one step, relative to the size of the update."""
    import keras

    from ggo.training import for_backend, set_precision, set_random_seed

    set_precision("float32")
    make_gan = for_backend(keras.backend.backend()).make_gan
    rng = np.random.default_rng(seed)
    y = (rng.random((4, 16, 16, 1)) > 0.6).astype(np.float32)
    x = (rng.normal(-0.5, 0.2, y.shape) + y).astype(np.float32)
    gen = dict(depth=3, base_filters=4, max_filters=16, norm="none")
    disc = dict(n_layers=2, base_filters=4, max_filters=16, norm="none")
    set_random_seed(seed)
    init = None
    after: dict[tuple[str, float], tuple[list, list]] = {}
    for update in ("sequential", "same_pass"):
        for d_lr in (0.0, 1.0):
            gan = make_gan("unet", "patchgan", 16, gen, disc)
            if init is None:
                init = (gan.generator.get_weights(), gan.discriminator.get_weights())
            gan.generator.set_weights(init[0])
            gan.discriminator.set_weights(init[1])
            gan.compile(
                keras.optimizers.SGD(0.1), keras.optimizers.SGD(d_lr), adversarial_weight=10.0, l1_weight=1.0,
                adversarial_update=update,
            )  # fmt: skip
            gan.train_on_batch(x, y)
            after[(update, d_lr)] = (gan.generator.get_weights(), gan.discriminator.get_weights())
    g_step = _distance(after[("sequential", 0.0)][0], init[0])
    d_step = _distance(after[("sequential", 1.0)][1], init[1])
    return {
        "g_step": g_step,
        "d_step": d_step,
        # Each relative to the size of the generator's (or discriminator's) update.
        "same_pass_g_by_d_lr": _distance(after[("same_pass", 0.0)][0], after[("same_pass", 1.0)][0]) / g_step,
        "same_pass_vs_frozen_d_sequential": _distance(after[("same_pass", 1.0)][0], after[("sequential", 0.0)][0]) / g_step,
        "sequential_g_by_d_lr": _distance(after[("sequential", 0.0)][0], after[("sequential", 1.0)][0]) / g_step,
        "d_update_same_pass_vs_sequential": _distance(after[("same_pass", 1.0)][1], after[("sequential", 1.0)][1]) / d_step,
    }


def check_update_order_answers(answers: dict[str, float]) -> None:
    """The assertions both backends' tests make on :func:`update_order_answers`."""
    assert answers["g_step"] > 0 and answers["d_step"] > 0, answers
    assert answers["same_pass_g_by_d_lr"] < 1e-5, answers  # G's gradient saw D before its update
    assert answers["same_pass_vs_frozen_d_sequential"] < 1e-4, answers
    assert answers["sequential_g_by_d_lr"] > 1e-2, answers  # ... and sequential's the updated D
    assert answers["d_update_same_pass_vs_sequential"] < 1e-4, answers


if __name__ == "__main__":
    print("RESULT " + json.dumps(update_order_answers()))
