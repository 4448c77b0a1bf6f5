"""A known answer for the generator's weight average (``use_ema`` on its optimizer), on this
process's backend, and a tiny training with it that must still learn.

Known answer: one generator step per epoch (batch = the whole training set), so at each epoch's
end the model must hold ``ema_k = m * ema_{k-1} + (1 - m) * raw_k`` (``ema_0 = raw_0``: Keras
starts the average at the first step's weights), while the optimizer's average slots hold the raw
weights ``raw_k`` (swapped out). ggo's ``BestGenerator`` copies the average; after ``fit`` (here
ended early by a callback) the generator holds the last epoch's average and the slots agree;
validation scored the average (``evaluate`` after ``fit`` gives the last ``val_dice``).

BatchNorm (the generator's default norm): the average runs on moving statistics re-estimated
for the averaged weights over the training batches, not on the raw network's (which failed on
real data); the raw network gets its own back when training resumes.

Imported by test_gan.py (TensorFlow); run as a script on JAX by test_jax_backend.py, which reads
the ``RESULT`` line.
"""

from __future__ import annotations

import json

import numpy as np
from blobs import blobs

MOMENTUM = 0.8


def _distance(a: list, b: list) -> float:
    """Largest absolute difference between two lists of arrays."""
    return float(max(np.max(np.abs(np.asarray(x) - np.asarray(y))) for x, y in zip(a, b)))


def ema_answers(seed: int = 0) -> dict:
    """Distances of the known answer, and the val dice of a tiny training with the average."""
    import keras

    from ggo.training import for_backend, set_precision, set_random_seed
    from ggo.training.callbacks import BestGenerator
    from ggo.training.ema import batchnorm_layers, batchnorm_statistics, reestimate_batchnorm, training_batches
    from ggo.training.gan_base import ema_optimizer

    set_precision("float32")
    trainer = for_backend(keras.backend.backend())
    gen, disc = dict(depth=3, base_filters=4, max_filters=16), dict(n_layers=2, base_filters=4, max_filters=16)
    x, y = blobs(8, 32, seed)
    vx, vy = blobs(8, 32, seed + 1)
    set_random_seed(seed)
    gan = trainer.make_gan("unet", "patchgan", 32, gen, disc)
    gan.compile(keras.optimizers.Adam(2e-3, beta_1=0.5, use_ema=True, ema_momentum=MOMENTUM), keras.optimizers.Adam(2e-4, beta_1=0.5))
    ema = ema_optimizer(gan.g_optimizer)
    seen: list[tuple[list, list, list]] = []  # per epoch: (model's trainable weights, average slots, all weights)
    bn = batchnorm_layers(gan.generator)
    raw_stats: dict[str, list] = {}  # the raw network's statistics after its last step, and at the next epoch's start

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if hasattr(self.model, "jax_state_sync"):
                self.model.jax_state_sync()  # JAX keeps the state outside the variables during an epoch
            raw_stats["after_step"] = batchnorm_statistics(bn)

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raw_stats["epoch_1_start"], raw_stats["epoch_0_end"] = batchnorm_statistics(bn), raw_stats["after_step"]

        def on_epoch_end(self, epoch, logs=None):
            seen.append((
                [np.array(v) for v in gan.generator.trainable_variables],
                [np.array(v) for v in ema._model_variables_moving_average],
                [np.array(w) for w in gan.generator.get_weights()],
            ))  # fmt: skip
            if epoch == 3:
                self.model.stop_training = True  # ends fit early, as EarlyStopping would

    best = BestGenerator(gan.generator)
    val = trainer.make_dataset(vx, vy, batch_size=8)
    train = trainer.make_dataset(x, y, batch_size=8)
    history = gan.fit(train, validation_data=val, epochs=10, callbacks=[best, Record()], verbose=0).history
    models, raws = [s[0] for s in seen], [s[1] for s in seen]
    expected = [raws[0]]
    for raw in raws[1:]:
        expected.append([MOMENTUM * e + (1 - MOMENTUM) * r for e, r in zip(expected[-1], raw)])
    final = [np.array(v) for v in gan.generator.trainable_variables]
    slots = [np.array(v) for v in ema._model_variables_moving_average]
    after = gan.evaluate(val, return_dict=True, verbose=0)["dice"]
    final_stats = batchnorm_statistics(bn)
    reestimate_batchnorm(gan.generator, training_batches(train, 64))  # the average's own statistics, again
    best_at = best.best_epoch - 1
    return {
        "epochs": len(seen),
        "g_steps": int(gan.g_optimizer.iterations),
        "model_vs_known_answer": max(_distance(m, e) for m, e in zip(models, expected)),
        "ema_vs_raw": _distance(models[-1], raws[-1]),
        "final_vs_last_average": _distance(final, models[-1]),
        "slots_vs_final": _distance(slots, final),
        "best_copy_vs_its_epoch": _distance(best.weights, seen[best_at][2]),
        "batchnorm_layers": len(bn),
        "final_stats_vs_reestimated": _distance(final_stats, batchnorm_statistics(bn)),
        "final_stats_vs_raw": _distance(final_stats, raw_stats["after_step"]),
        "raw_stats_restored": _distance(raw_stats["epoch_1_start"], raw_stats["epoch_0_end"]),
        "evaluate_after_fit": float(after),
        "last_val_dice": float(history["val_dice"][-1]),
        "learning_val_dice": _learns(trainer, gen, disc, seed),
    }


def _learns(trainer, gen: dict, disc: dict, seed: int) -> list[float]:
    """val dice per epoch of 80 generator steps (batch 4, a cosine learning rate) with the average."""
    import keras

    from ggo.training import make_schedule, set_random_seed

    x, y = blobs(16, 32, seed + 2)
    vx, vy = blobs(8, 32, seed + 3)
    set_random_seed(seed)
    gan = trainer.make_gan("unet", "patchgan", 32, gen, disc)
    steps = 20 * 4
    gan.compile(
        keras.optimizers.Adam(make_schedule(4e-3, "cosine", steps), beta_1=0.5, use_ema=True, ema_momentum=0.9),
        keras.optimizers.Adam(make_schedule(2e-4, "cosine", steps), beta_1=0.5),
    )
    fit = gan.fit(trainer.make_dataset(x, y, batch_size=4, shuffle=True, seed=seed), validation_data=trainer.make_dataset(vx, vy, batch_size=8),
                  epochs=20, verbose=0)  # fmt: skip
    return [float(v) for v in fit.history["val_dice"]]


def check_ema_answers(r: dict) -> None:
    assert r["epochs"] == 4 and r["g_steps"] == 4, r  # stopped early, one step per epoch
    assert r["model_vs_known_answer"] < 1e-5, r  # what validation and on_epoch_end see is the average
    assert r["ema_vs_raw"] > 1e-4, r  # ... which differs from the raw weights
    assert r["final_vs_last_average"] < 1e-6 and r["slots_vs_final"] < 1e-6, r  # finalized after an early stop
    assert r["best_copy_vs_its_epoch"] < 1e-6, r
    assert r["batchnorm_layers"] > 0, r
    assert r["final_stats_vs_reestimated"] < 1e-4, r  # the average runs on statistics of its own ...
    assert r["final_stats_vs_raw"] > 1e-3, r  # ... not on the raw network's
    assert r["raw_stats_restored"] < 1e-6, r  # and the raw network trains on with its own
    assert abs(r["evaluate_after_fit"] - r["last_val_dice"]) < 1e-4, r  # validation scored the average
    dice = r["learning_val_dice"]
    assert max(dice) > 0.7 and dice[-1] > dice[0] + 0.2, dice


if __name__ == "__main__":
    print("RESULT " + json.dumps(ema_answers()))
