"""Auxiliary heads (``gen.aux_heads``) in training and at inference, and models saved before them."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ggo.heads import model_heads
from ggo.evaluation.inference import predict_probs, sigmoid
from ggo.evaluation.metrics import evaluate
from ggo.models import build_generator, generator_from_config
from ggo.training import for_backend

TRAINER = for_backend("tensorflow")
FIXTURES = Path(__file__).resolve().parent / "data"
TINY_GEN = dict(depth=3, base_filters=8)


def heart_scenes(n=16, size=32, seed=0, heart_unknown=0.25):
    """Two "lungs", a "heart" band between them, a GGO disk in a lung and a distractor disk above
    both. Targets (N, R, R, 5): GGO, heart, heart weight, lungs, lung weight; a share
    ``heart_unknown`` of the films has no heart annotation (weight 0, target 0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    lungs = np.zeros((size, size), np.float32)
    lungs[6:28, 3:13] = lungs[6:28, 19:29] = 1
    heart = np.zeros((size, size), np.float32)
    heart[14:28, 14:18] = 1
    images, targets = [], []
    for i in range(n):
        cx = rng.uniform(6, 10) + (16 if rng.random() < 0.5 else 0)
        ggo = ((xx - cx) ** 2 + (yy - rng.uniform(10, 24)) ** 2 <= 9).astype(np.float32)
        distractor = ((xx - rng.uniform(4, 28)) ** 2 + (yy - 2) ** 2 <= 4).astype(np.float32)
        image = rng.normal(-0.6, 0.1, (size, size)) + 0.5 * lungs + 0.3 * heart + 0.8 * np.maximum(ggo, distractor)
        known = float(i >= round(heart_unknown * n))
        one = np.ones((size, size), np.float32)
        images.append(image.astype(np.float32))
        targets.append(np.stack([ggo, heart * known, one * known, lungs, one], -1))
    return np.stack(images)[..., None], np.stack(targets).astype(np.float32)


def test_two_aux_heads_learn_and_only_the_lungs_gate_ggo(tmp_path: Path):
    x, t = heart_scenes(16)
    vx, vt = heart_scenes(8, seed=1, heart_unknown=0.0)
    keras.utils.set_random_seed(0)
    gan = TRAINER.make_gan("unet", "none", 32, {**TINY_GEN, "aux_heads": ["heart", "lungs"]})
    gan.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), lung_weight=10.0, aux_weights={"heart": 10.0})
    assert gan.generator.output.shape[-1] == 3 and gan.heads == ("heart", "lungs")
    history = gan.fit(
        TRAINER.make_dataset(x, t, batch_size=4, shuffle=True), validation_data=TRAINER.make_dataset(vx, vt, batch_size=8),
        epochs=25, verbose=0,
    ).history
    assert {"heart", "lung", "val_heart", "val_lung"} <= set(history)
    # Each head learns (measured: heart 0.645 -> 0.362; the thin heart band is far from learnt
    # in 25 epochs, its dice is still 0, so only its loss is asked of it).
    assert history["heart"][-1] < 0.7 * history["heart"][0]
    assert history["lung"][-1] < 0.5 * history["lung"][0]
    probs = sigmoid(gan.generator.predict(vx, verbose=0))
    assert evaluate(vt[..., 3:4], probs[..., 2:3])["dice"] > 0.9  # lungs
    gated = predict_probs(gan.generator, vx)
    np.testing.assert_allclose(gated, probs[..., :1] * probs[..., 2:3], rtol=1e-5, atol=1e-6)  # lungs, not heart
    gan.generator.save(tmp_path / "g.keras")
    loaded = keras.saving.load_model(tmp_path / "g.keras", compile=False)
    assert model_heads(loaded) == ("heart", "lungs")
    np.testing.assert_allclose(predict_probs(loaded, vx), gated, rtol=1e-5, atol=1e-6)


def test_heads_without_lungs_leave_the_ggo_probability_alone():
    g = build_generator("unet", 32, depth=3, base_filters=4, aux_heads=["heart", "devices"])
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(predict_probs(g, x), sigmoid(g(x))[..., :1], rtol=1e-6)


def test_a_lung_head_model_saved_before_aux_heads_loads_and_predicts_as_it_did():
    """tests/training/data/lung_head_v1.keras: a tiny lung-head generator saved by the code before
    gen.aux_heads (commit f6e23ab), with that code's predict_probs on fixed images."""
    with np.load(FIXTURES / "lung_head_v1.npz") as saved:
        images, expected = saved["images"], saved["probs"]
    old = keras.saving.load_model(FIXTURES / "lung_head_v1.keras", compile=False)
    assert model_heads(old) == ("lungs",)
    # Within float32 round-off of another CPU's kernels (the probabilities were saved on an AVX2
    # CPU; an AVX-512 one differs by up to ~3e-6): a lost head or gate would differ by far more.
    np.testing.assert_allclose(predict_probs(old, images), expected, rtol=1e-5, atol=1e-5)
    # What today's code builds for gen.lung_head=true takes the old weights unchanged (the
    # exported model, a checkpoint resume).
    rebuilt = generator_from_config({"name": "unet", "depth": 3, "base_filters": 4, "lung_head": True}, 32)
    assert [w.shape for w in rebuilt.get_weights()] == [w.shape for w in old.get_weights()]
    assert rebuilt.layers[-1].name == old.layers[-1].name == "logits"
    rebuilt.set_weights(old.get_weights())
    np.testing.assert_allclose(predict_probs(rebuilt, images), expected, rtol=1e-5, atol=1e-5)


def test_compile_refuses_aux_weights_that_do_not_match_the_heads():
    gan = TRAINER.make_gan("unet", "none", 32, {"depth": 3, "base_filters": 4, "aux_heads": ["heart"]})
    with pytest.raises(ValueError, match="missing \\['heart'\\]"):
        gan.compile(keras.optimizers.Adam())
    with pytest.raises(ValueError, match="not heads \\['devices'\\]"):
        gan.compile(keras.optimizers.Adam(), aux_weights={"heart": 1.0, "devices": 1.0})
