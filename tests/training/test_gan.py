"""The GAN keras.Model: wiring, precision, learning, failure handling, callbacks, saving."""

import math

import keras
import numpy as np
import pytest

from ggo.models import build_discriminator, build_generator
from ggo.training import (
    LOSS_NAMES,
    EarlyStoppingOnValidation,
    NonFiniteLossError,
    RaiseOnNonFinite,
    for_backend,
    make_schedule,
    set_precision,
    validation_epochs,
)
from ggo.training.precision import auto_precision, gpu_available, read_cpuinfo
from blobs import blobs
from ema_answer import check_ema_answers, ema_answers
from update_order import check_update_order_answers, update_order_answers

TRAINER = for_backend("tensorflow")  # this test process runs Keras on TensorFlow
GAN, make_dataset, make_gan = TRAINER.GAN, TRAINER.make_dataset, TRAINER.make_gan

METRICS = ("dice", "dice_pooled", "iou", "precision", "recall", "specificity")
TINY_GEN = dict(depth=3, base_filters=4)
TINY_DISC = dict(base_filters=4)


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    yield
    keras.mixed_precision.set_global_policy("float32")


def tiny_gan(disc="patchgan", size=32, gen="unet", g_lr=2e-3, d_lr=2e-4, gen_options=None, **compile_kw):
    gan = make_gan(gen, disc, size, {**TINY_GEN, **(gen_options or {})}, {**TINY_DISC, "n_layers": 2} if disc == "patchgan" else TINY_DISC)
    d_opt = keras.optimizers.Adam(d_lr, beta_1=0.5) if disc != "none" else None
    gan.compile(keras.optimizers.Adam(g_lr, beta_1=0.5), d_opt, **compile_kw)
    return gan


@pytest.fixture(scope="module")
def data():
    x, y = blobs(16)
    vx, vy = blobs(8, seed=1)
    return x, y, vx, vy


# ------------------------------------------------------------------ wiring
@pytest.mark.parametrize("gen", ["unet", "attention_unet"])
@pytest.mark.parametrize("n_layers", [None, 1, 2, 3, 4])
def test_every_generator_discriminator_combination_builds_at_64px(gen, n_layers):
    disc = "none" if n_layers is None else "patchgan"
    options = {} if n_layers is None else {"n_layers": n_layers, "base_filters": 4}
    gan = make_gan(gen, disc, 64, dict(depth=4, base_filters=4), options)
    x = keras.ops.zeros((2, 64, 64, 1))
    logits = gan(x)
    assert tuple(logits.shape) == (2, 64, 64, 1)
    if n_layers is None:
        assert gan.discriminator is None
    else:
        side = 64 // 2**n_layers
        assert tuple(gan.discriminator([x, keras.ops.sigmoid(logits)]).shape) == (2, side, side, 1)


def test_compile_requires_a_discriminator_optimizer_when_there_is_a_discriminator():
    gan = make_gan("unet", "patchgan", 32, TINY_GEN, TINY_DISC)
    with pytest.raises(ValueError, match="d_optimizer"):
        gan.compile(keras.optimizers.Adam())
    with pytest.raises(ValueError, match="different"):
        opt = keras.optimizers.Adam()
        gan.compile(opt, opt)


# ------------------------------------------------------------------ precision
def test_set_precision_resolves_auto_and_rejects_unknown_modes():
    assert set_precision("auto") == auto_precision(gpu=gpu_available(), cpuinfo=read_cpuinfo())
    assert set_precision("mixed_bfloat16") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    with pytest.raises(ValueError, match="auto, float32, mixed_float16, mixed_bfloat16"):
        set_precision("float16")


@pytest.mark.parametrize("mode", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_train_steps_run_with_float32_outputs_and_finite_losses_in_every_precision(mode, data):
    x, y, vx, vy = data
    assert set_precision(mode) == mode
    keras.utils.set_random_seed(0)
    gan = tiny_gan("patchgan", dice_weight=1.0, bce_weight=1.0)
    history = gan.fit(
        make_dataset(x[:8], y[:8], batch_size=4), validation_data=make_dataset(vx[:4], vy[:4], batch_size=4),
        epochs=1, verbose=0,
    )
    assert keras.backend.standardize_dtype(gan.generator(x[:2]).dtype) == "float32"
    assert keras.backend.standardize_dtype(gan.discriminator([x[:2], y[:2]]).dtype) == "float32"
    assert gan.generator.get_layer("enc0_1_conv").compute_dtype == ("float32" if mode == "float32" else mode[6:])
    for key, values in history.history.items():
        assert all(math.isfinite(v) for v in values), key
    expect_scaling = mode == "mixed_float16"
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer) == expect_scaling
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer) == expect_scaling


# ------------------------------------------------------------------ learning
def test_supervised_unet_learns_bright_blobs_to_val_dice_above_0_9(data):
    x, y, vx, vy = data
    keras.utils.set_random_seed(0)
    gan = tiny_gan("none", gen_options={"base_filters": 8})
    history = gan.fit(  # 80 steps of batch 4
        make_dataset(x, y, batch_size=4, shuffle=True), validation_data=make_dataset(vx, vy, batch_size=8),
        epochs=20, verbose=0,
    )
    assert history.history["d_loss"][-1] == 0.0 and history.history["adv"][-1] == 0.0
    assert max(history.history["val_dice"]) > 0.9


@pytest.mark.parametrize("update", ["sequential", "same_pass"])
def test_unet_with_patchgan_learns_bright_blobs_to_val_dice_above_0_8(data, update):
    x, y, vx, vy = data
    keras.utils.set_random_seed(0)
    gan = tiny_gan("patchgan", gen_options={"base_filters": 8}, adversarial_update=update)
    history = gan.fit(  # 80 steps of batch 4
        make_dataset(x, y, batch_size=4, shuffle=True), validation_data=make_dataset(vx, vy, batch_size=8),
        epochs=20, verbose=0,
    )
    assert history.history["d_loss"][-1] > 0.0
    assert max(history.history["val_dice"]) > 0.8


# ------------------------------------------------------------------ options
def test_fit_logs_every_loss_and_metric_for_train_and_val(data):
    x, y, vx, vy = data
    gan = tiny_gan("patchgan")
    history = gan.fit(
        make_dataset(x[:4], y[:4], batch_size=4), validation_data=make_dataset(vx[:4], vy[:4], batch_size=4),
        epochs=1, verbose=0,
    )
    expected = set(LOSS_NAMES) | set(METRICS)
    assert expected | {f"val_{k}" for k in expected} <= set(history.history)
    # predict takes the same (image, mask) dataset and returns logits per image.
    assert gan.predict(make_dataset(vx[:4], vy[:4], batch_size=4), verbose=0).shape == (4, 32, 32, 1)


@pytest.mark.parametrize("mode, smoothing", [("bce", 0.1), ("lsgan", 0.0)])
def test_several_discriminator_steps_per_generator_step(data, mode, smoothing):
    x, y, _, _ = data
    gan = tiny_gan("patchgan", d_steps=3, adversarial_mode=mode, label_smoothing=smoothing)
    history = gan.fit(make_dataset(x[:8], y[:8], batch_size=4), epochs=1, verbose=0)
    assert int(gan.g_optimizer.iterations) == 2
    assert int(gan.d_optimizer.iterations) == 6
    assert all(math.isfinite(v[-1]) for v in history.history.values())


def test_same_pass_takes_the_generator_gradient_through_the_discriminator_before_its_update():
    check_update_order_answers(update_order_answers())


def test_same_pass_makes_one_discriminator_update_and_refuses_several(data):
    x, y, _, _ = data
    with pytest.raises(ValueError, match="d_steps=3.*sequential"):
        tiny_gan("patchgan", d_steps=3, adversarial_update="same_pass")
    with pytest.raises(ValueError, match="sequential, same_pass"):
        tiny_gan("patchgan", adversarial_update="joint")
    tiny_gan("none", d_steps=3, adversarial_update="same_pass")  # nothing to share without a discriminator
    gan = tiny_gan("patchgan", adversarial_update="same_pass")
    history = gan.fit(make_dataset(x[:8], y[:8], batch_size=4), epochs=1, verbose=0)
    assert int(gan.g_optimizer.iterations) == int(gan.d_optimizer.iterations) == 2
    assert all(math.isfinite(v[-1]) for v in history.history.values())


def test_jit_compiled_train_step_runs(data):
    x, y, _, _ = data
    gan = tiny_gan("patchgan", jit_compile=True)
    assert gan.jit_compile is True
    history = gan.fit(make_dataset(x[:4], y[:4], batch_size=2), epochs=1, verbose=0)
    assert math.isfinite(history.history["g_loss"][-1])


def test_make_schedule_constant_cosine_step_with_warmup():
    assert make_schedule(1e-3) == 1e-3
    cosine = make_schedule(1e-3, "cosine", total_steps=110, warmup_steps=10)
    assert float(cosine(0)) == pytest.approx(1e-4)
    assert float(cosine(9)) == pytest.approx(1e-3)
    assert float(cosine(10)) == pytest.approx(1e-3)
    assert float(cosine(60)) == pytest.approx(5e-4, rel=1e-3)
    assert float(cosine(110)) == pytest.approx(0.0, abs=1e-9)
    step = make_schedule(1e-3, "step", total_steps=100)
    assert [float(step(s)) for s in (0, 60, 90)] == pytest.approx([1e-3, 1e-4, 1e-5])
    with pytest.raises(ValueError, match="constant, cosine, step"):
        make_schedule(1e-3, "linear", total_steps=10)
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule(1e-3, "cosine")


def test_schedule_drives_the_generator_optimizer(data):
    x, y, _, _ = data
    gan = make_gan("unet", "none", 32, TINY_GEN, {})
    gan.compile(keras.optimizers.Adam(make_schedule(1e-3, "step", total_steps=4)))
    gan.fit(make_dataset(x[:8], y[:8], batch_size=2), epochs=1, verbose=0)
    assert float(gan.g_optimizer.learning_rate) == pytest.approx(1e-5)


# ------------------------------------------------------------------ failures
def test_nan_input_raises_non_finite_loss_error_naming_loss_epoch_and_batch(data):
    x, y, _, _ = data
    bad = x[:8].copy()
    bad[5, 3, 3, 0] = np.nan  # second batch
    gan = tiny_gan("patchgan")
    with pytest.raises(NonFiniteLossError) as info:
        gan.fit(make_dataset(bad, y[:8], batch_size=4), epochs=2, verbose=0)
    message = str(info.value)
    assert "g_loss" in message and "epoch 0" in message and "batch 1" in message
    assert "learning rate" in message and "float32" in message


def test_raise_on_non_finite_is_a_runtime_error_for_inf_values():
    callback = RaiseOnNonFinite()
    callback.on_epoch_begin(3)
    callback.on_train_batch_end(0, {"g_loss": 1.0, "d_loss": 0.5})
    with pytest.raises(RuntimeError, match="d_loss=inf at epoch 3, batch 7"):
        callback.on_train_batch_end(7, {"g_loss": 1.0, "d_loss": float("inf")})


# ------------------------------------------------------------------ callbacks and saving
def test_early_stopping_on_val_dice_restores_the_best_epoch(data):
    x, y, vx, vy = data
    keras.utils.set_random_seed(0)
    gan = tiny_gan("none")
    # Validation masks are inverted: the better the model learns the blobs, the worse val_dice,
    # so the best epoch is the first and early stopping must bring it back.
    val = make_dataset(vx, 1.0 - vy, batch_size=8)
    stop = keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", patience=1, restore_best_weights=True)
    history = gan.fit(make_dataset(x, y, batch_size=4), validation_data=val, epochs=10, callbacks=[stop], verbose=0)
    val_dice = history.history["val_dice"]
    assert len(val_dice) < 10
    assert val_dice.index(max(val_dice)) == 0
    restored = gan.evaluate(val, return_dict=True, verbose=0)["dice"]
    assert restored == pytest.approx(val_dice[0], abs=1e-6)
    assert restored != pytest.approx(val_dice[-1], abs=1e-6)


def test_sparse_validation_validates_every_k_epochs_and_the_last_and_patience_counts_epochs(data):
    x, y, vx, vy = data
    assert validation_epochs(0, 7, 3) == [3, 6, 7] and validation_epochs(4, 9, 2) == [6, 8, 9]
    assert validation_epochs(0, 4, 1) == [1, 2, 3, 4]
    keras.utils.set_random_seed(0)
    gan = tiny_gan("none")
    # Inverted validation masks: the better the blobs are learnt, the worse val_dice, so the
    # first validation (epoch 2) stays the best; patience 4 epochs = 2 validations of every 2.
    stop = EarlyStoppingOnValidation(patience_epochs=4, val_every=2)
    history = gan.fit(
        make_dataset(x, y, batch_size=4), validation_data=make_dataset(vx, 1.0 - vy, batch_size=8), epochs=20,
        callbacks=[stop], validation_freq=validation_epochs(0, 20, 2), verbose=0,
    ).history  # fmt: skip
    assert len(history["dice"]) == 6 and len(history["val_dice"]) == 3
    assert history["val_dice"][0] == max(history["val_dice"])


def test_model_checkpoint_keeps_best_weights_that_reload_into_a_new_gan(data, tmp_path):
    x, y, vx, vy = data
    keras.utils.set_random_seed(0)
    gan = tiny_gan("patchgan")
    path = tmp_path / "best.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(
        path, monitor="val_dice", mode="max", save_best_only=True, save_weights_only=True
    )
    val = make_dataset(vx, vy, batch_size=8)
    gan.fit(make_dataset(x, y, batch_size=8), validation_data=val, epochs=2, callbacks=[checkpoint], verbose=0)
    assert path.exists()
    fresh = tiny_gan("patchgan")
    fresh.load_weights(path)
    assert fresh.evaluate(val, return_dict=True, verbose=0)["dice"] >= 0.0


def test_gan_and_generator_save_and_reload_with_the_same_predictions(data, tmp_path):
    x, y, _, _ = data
    gan = tiny_gan("patchgan", gen="attention_unet", adversarial_update="same_pass")
    gan.fit(make_dataset(x[:4], y[:4], batch_size=4), epochs=1, verbose=0)
    logits = gan.predict(x[:4], verbose=0)
    assert logits.shape == (4, 32, 32, 1) and (logits.min() < 0 or logits.max() > 1)

    gan.generator.save(tmp_path / "generator.keras")
    generator = keras.models.load_model(tmp_path / "generator.keras")
    np.testing.assert_allclose(generator.predict(x[:4], verbose=0), logits, atol=1e-5)

    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    assert isinstance(loaded, GAN) and loaded.discriminator is not None
    assert loaded.adversarial_update == "same_pass" and loaded.l1_weight == 100.0
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0), logits, atol=1e-5)
    assert int(loaded.d_optimizer.iterations) == 1
    loaded.fit(make_dataset(x[:4], y[:4], batch_size=4), epochs=1, verbose=0)  # training resumes


def test_gan_wraps_prebuilt_models():
    gan = GAN(build_generator("unet", 32, **TINY_GEN), build_discriminator("patchgan_small", 32, **TINY_DISC))
    assert gan(np.zeros((1, 32, 32, 1), np.float32)).shape == (1, 32, 32, 1)


# ------------------------------------------------------------------ lung head
def lung_scenes(n=16, size=32, seed=0, unannotated=0.0):
    """Two bright "lungs" (rectangles), a GGO disk inside one of them and an equally bright
    distractor disk outside both. Targets (N, R, R, 3): GGO, lungs, lung weight; a share
    ``unannotated`` of the images has NO lung annotation (lungs all 0, weight 0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    lungs = np.zeros((size, size), np.float32)
    lungs[6:28, 3:14] = lungs[6:28, 18:29] = 1
    images, targets = [], []
    for i in range(n):
        cx = rng.uniform(6, 11) + (15 if rng.random() < 0.5 else 0)
        cy = rng.uniform(10, 24)
        ggo = ((xx - cx) ** 2 + (yy - cy) ** 2 <= 9).astype(np.float32)
        distractor = ((xx - rng.uniform(4, 28)) ** 2 + (yy - 2) ** 2 <= 4).astype(np.float32)
        image = rng.normal(-0.6, 0.1, (size, size)) + 0.5 * lungs + 0.8 * np.maximum(ggo, distractor)
        annotated = i >= round(unannotated * n)
        weight = np.full((size, size), float(annotated), np.float32)
        images.append(image.astype(np.float32))
        targets.append(np.stack([ggo, lungs * annotated, weight], -1))
    return np.stack(images)[..., None], np.stack(targets).astype(np.float32)


def test_lung_head_learns_lungs_from_annotated_images_only_and_gates_ggo_outside_them():
    from ggo.evaluation.inference import predict_probs
    from ggo.evaluation.metrics import evaluate

    x, t = lung_scenes(16, unannotated=0.75)  # 12 of 16 images say nothing about their lungs
    vx, vt = lung_scenes(8, seed=1)
    keras.utils.set_random_seed(0)
    gan = tiny_gan("none", gen_options={"base_filters": 8, "lung_head": True}, lung_weight=10.0)
    assert gan.generator.output.shape[-1] == 2
    history = gan.fit(
        make_dataset(x, t, batch_size=4, shuffle=True), validation_data=make_dataset(vx, vt, batch_size=8),
        epochs=25, verbose=0,
    )
    assert history.history["lung"][-1] < 0.5 * history.history["lung"][0]  # the lung head learns
    logits = gan.generator.predict(vx, verbose=0)
    lung_probs = 1 / (1 + np.exp(-logits[..., 1:2]))
    # Weight-0 images taught nothing: an unweighted loss would pull the lungs to P ~ 0.25.
    assert evaluate(vt[..., 1:2], lung_probs)["dice"] > 0.9
    gated = predict_probs(gan.generator, vx)  # GGO x lungs, one channel
    assert gated.shape == (8, 32, 32, 1)
    assert float(gated[:, :4].max()) < 0.2  # the distractor row above the lungs is gated off
    assert evaluate(vt[..., :1], gated)["dice"] > 0.7


# ---------------------------------------------------------------- weight average (train.ema)
@pytest.mark.slow
def test_generator_weight_average_has_the_known_answer_its_own_batchnorm_statistics_and_learns():
    check_ema_answers(ema_answers())


def test_a_discriminator_optimizer_with_a_weight_average_is_refused():
    gan = make_gan("unet", "patchgan", 32, TINY_GEN, {**TINY_DISC, "n_layers": 2})
    with pytest.raises(ValueError, match="d_optimizer has use_ema=True"):
        gan.compile(keras.optimizers.Adam(), keras.optimizers.Adam(use_ema=True))
