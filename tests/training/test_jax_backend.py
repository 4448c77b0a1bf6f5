"""The JAX backend (``train.backend=jax``): the numpy input pipeline, the JaxGAN step against the
TensorFlow step, learning, precisions, the CLI end to end, and the GPU check (``ggo.bench.gpu``) on a CPU.

This pytest process holds Keras on TensorFlow, so everything on JAX runs in subprocesses with
``KERAS_BACKEND=jax``. Each such subprocess (and any process it starts) runs under a
``sitecustomize`` hook that records every real import of ``tensorflow`` with its stack; a test
fails if the record is not empty. The hook records module execution, not ``find_spec`` probes
(torch probes for tensorflow without importing it). JAX subprocesses share one persistent XLA
compilation cache per test run, across pytest-xdist workers.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ggo.training.numpy_pipeline import AugmentConfig, affine_transforms, make_dataset, warp_batch
from helpers import tiny_overrides

ROOT = Path(__file__).resolve().parents[2]

TF_WATCH = '''
"""Test hook: record every real import of tensorflow (its stack) in $GGO_TF_IMPORT_LOG."""
import importlib.machinery, os, sys, traceback

_LOG = os.environ.get("GGO_TF_IMPORT_LOG")


class _TensorFlowWatch:
    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def watched(module):
            with open(_LOG, "a") as f:
                f.write(f"pid {os.getpid()} argv {sys.argv}\\n" + "".join(traceback.format_stack()) + "----\\n")
            return execute(module)

        spec.loader.exec_module = watched
        return spec


if _LOG:
    sys.meta_path.insert(0, _TensorFlowWatch())
'''

# Shared by the JAX scripts below.
PREAMBLE = '''
import json, math, sys
import numpy as np
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
from ggo.training import LOSS_NAMES, NonFiniteLossError, for_backend, set_precision, set_random_seed
from ggo.training.jax_gan import JaxGAN
TRAINER = for_backend("jax")
GAN, make_dataset, make_gan = TRAINER.GAN, TRAINER.make_dataset, TRAINER.make_gan
METRICS = ("dice", "dice_pooled", "iou", "precision", "recall", "specificity")
# One tiny model for every JAX test (and the CLI's tiny_overrides): its weight initialisers
# then compile once per session (XLA cache), not once per test.
GEN = dict(depth=3, base_filters=4, max_filters=16)
DISC = dict(base_filters=4, max_filters=16)


def blobs(n=16, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        cx, cy = rng.uniform(size / 4, 3 * size / 4, 2)
        r = rng.uniform(size / 8, size / 4)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32)
        images.append(rng.normal(-0.5, 0.2, (size, size)).astype(np.float32) + mask)
        masks.append(mask)
    return np.stack(images)[..., None], np.stack(masks)[..., None]
'''


def shared_xla_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One persistent XLA compilation cache for the whole test run, pytest-xdist workers included
    (their base temp dirs share a parent): a program one worker compiled, the other loads. XLA
    compiles dominate these tests: the TF/JAX step comparison's JAX process takes ~130 s with an
    empty cache and ~25 s with a warm one on a 2-core CPU. JAX writes cache entries atomically."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / "xla-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def jax_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a JAX subprocess: backend, CPU only, the TensorFlow watch, an XLA cache."""
    hook = tmp_path_factory.mktemp("tf-watch")
    (hook / "sitecustomize.py").write_text(TF_WATCH)
    return {
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(shared_xla_cache(tmp_path_factory)),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "HYDRA_FULL_ERROR": "1",
        "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }


def run_jax(args: list[str], jax_env: dict[str, str], tmp_path: Path, *, cwd: Path = ROOT, timeout: int = 300):
    """Run ``python *args`` on JAX; fail on a non-zero exit or any import of tensorflow."""
    log = tmp_path / "tensorflow-imports.log"
    env = {**os.environ, **jax_env, "GGO_TF_IMPORT_LOG": str(log)}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert not log.exists(), "tensorflow was imported on the JAX path:\n" + log.read_text()[-6000:]
    return proc


def run_jax_script(body: str, jax_env: dict[str, str], tmp_path: Path, *args: str, timeout: int = 300):
    script = tmp_path / "script.py"
    script.write_text(PREAMBLE + textwrap.dedent(body))
    return run_jax([str(script), *args], jax_env, tmp_path, timeout=timeout)


def result(proc) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


# ------------------------------------------------------------------ numpy pipeline (no JAX needed)
def disks(n=8, size=32, seed=0):
    """Binary disks at random places; returns (images, masks) with image == mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        cx, cy, r = *rng.uniform(8, size - 8, 2), rng.uniform(3, 7)
        out.append(((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32))
    m = np.stack(out)[..., None]
    return m.copy(), m


def collect(ds):
    images, masks = zip(*[ds[i] for i in range(len(ds))])
    return np.concatenate(images), np.concatenate(masks)


GEOMETRIC = AugmentConfig(rotation_deg=20, scale=0.15, shift=0.1, brightness=0, contrast=0, fill_value=0.0)


@pytest.mark.parametrize("fill_mode", ["constant", "reflect"])
def test_numpy_warp_matches_tensorflow_image_projective_transform(fill_mode):
    import tensorflow as tf

    size = 32
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    rng = np.random.default_rng(0)
    # Smooth images (bilinear differences stay small) and disk masks.
    images = np.stack([np.sin(xx / 5 + p) * np.cos(yy / 7 - p) for p in rng.uniform(0, 3, 8)])[..., None]
    _, masks = disks(8)
    transforms = affine_transforms(8, size, size, GEOMETRIC, rng)
    x_np, y_np = warp_batch(images, masks, transforms, fill_mode=fill_mode, fill_value=-1.0)

    offset = -1.0 if fill_mode == "constant" else 0.0  # the tf.data pipeline's fill trick
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=np.concatenate([images - offset, masks], -1), transforms=transforms,
        output_shape=[size, size], fill_value=0.0, interpolation="BILINEAR", fill_mode=fill_mode.upper(),
    ).numpy()
    x_tf, y_tf = warped[..., :1] + offset, (warped[..., 1:] > 0.5).astype(np.float32)
    assert np.abs(x_np - x_tf).mean() < 0.01 and np.abs(x_np - x_tf).max() < 0.1
    assert (y_np == y_tf).mean() > 0.99


def test_affine_transforms_draw_the_tf_pipelines_ranges():
    cfg = AugmentConfig(rotation_deg=10, scale=0.1, shift=0.05)
    rows = affine_transforms(4000, 64, 48, cfg, np.random.default_rng(1)).astype(np.float64)
    a0, a1, a2, b0, b1, b2 = rows[:, :6].T
    det = a0 * b1 - a1 * b0  # = flip / zoom**2
    theta = np.degrees(np.arctan2(-a1, b1))
    zoom = 1 / np.sqrt(np.abs(det))
    cx, cy = (48 - 1) / 2, (64 - 1) / 2
    tx, ty = a0 * cx + a1 * cy + a2 - cx, b0 * cx + b1 * cy + b2 - cy  # where the centre samples from
    assert np.abs(theta).max() <= 10 + 1e-6 and np.abs(theta).max() > 9
    assert zoom.min() >= 0.9 - 1e-6 and zoom.max() <= 1.1 + 1e-6
    assert 0.45 < (det < 0).mean() < 0.55  # flips about half the time
    assert np.abs(tx).max() <= 0.05 * 48 + 1e-6 and np.abs(ty).max() <= 0.05 * 64 + 1e-6
    assert rows[:, 6:].max() == 0


def test_numpy_batches_shuffle_seeded_and_reshuffle_each_epoch():
    images, masks = disks(10)
    ds = make_dataset(images, masks[..., 0], batch_size=4)
    assert [len(ds[i][0]) for i in range(len(ds))] == [4, 4, 2]
    x, y = ds[0]
    assert x.dtype == np.float32 and y.dtype == np.float32 and x.shape[1:] == y.shape[1:] == (32, 32, 1)
    np.testing.assert_array_equal(collect(ds)[0], images)  # no augmentation: unchanged, in order
    assert len(make_dataset(images, masks, batch_size=4, drop_remainder=True)) == 2
    with pytest.raises(IndexError):
        ds[3]

    order = np.arange(16, dtype=np.float32)[:, None, None, None] * np.ones((16, 4, 4, 1), np.float32)
    ds = make_dataset(order, np.zeros_like(order), batch_size=16, shuffle=True, seed=1)
    first = collect(ds)[0][:, 0, 0, 0]
    ds.on_epoch_end()
    second = collect(ds)[0][:, 0, 0, 0]
    again = collect(make_dataset(order, np.zeros_like(order), batch_size=16, shuffle=True, seed=1))[0][:, 0, 0, 0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second) and sorted(first.tolist()) == list(range(16))


@pytest.mark.parametrize("fill_mode", ["constant", "reflect"])
def test_numpy_augmentation_moves_image_and_mask_together_seeded_per_epoch(fill_mode):
    images, masks = disks(8)
    cfg = AugmentConfig(**{**GEOMETRIC.__dict__, "fill_mode": fill_mode})
    ds = make_dataset(images, masks, batch_size=4, shuffle=True, augment=cfg, seed=3)
    x, y = collect(ds)
    np.testing.assert_array_equal((x > 0.5).astype(np.float32), y)  # same warp for both
    assert set(np.unique(y).tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(x, collect(make_dataset(images, masks, batch_size=4, shuffle=True, augment=cfg, seed=3))[0])
    ds.on_epoch_end()
    assert not np.array_equal(x, collect(ds)[0])


def test_numpy_flip_constant_fill_and_photometric_jitter():
    images, masks = disks(16)
    images = images + np.linspace(0, 0.1, 32, dtype=np.float32)[None, None, :, None]  # asymmetric
    flip = AugmentConfig(flip=True, rotation_deg=0, scale=0, shift=0, brightness=0, contrast=0)
    x, y = collect(make_dataset(images, masks, batch_size=16, augment=flip))
    flipped = [not np.allclose(x[i], images[i]) for i in range(16)]
    assert 0 < sum(flipped) < 16
    for i in range(16):
        ref_x, ref_y = (images[i, :, ::-1], masks[i, :, ::-1]) if flipped[i] else (images[i], masks[i])
        np.testing.assert_allclose(x[i], ref_x, atol=1e-5)
        np.testing.assert_array_equal(y[i], ref_y)

    ones = np.ones((4, 32, 32, 1), np.float32)
    shift = AugmentConfig(flip=False, rotation_deg=0, scale=0, shift=0.2, brightness=0, contrast=0, fill_value=-1.0)
    x, y = collect(make_dataset(ones, ones, batch_size=4, augment=shift))
    assert x.min() == pytest.approx(-1.0) and y.min() == 0.0
    np.testing.assert_array_equal(x > 0.0, y == 1.0)

    photo = AugmentConfig(flip=False, rotation_deg=0, scale=0, shift=0, brightness=0.2, contrast=0.2)
    x, y = collect(make_dataset(images, masks, batch_size=16, augment=photo))
    np.testing.assert_array_equal(y, masks)
    for i in range(16):  # x = (image - mean) * c + mean + b, with c in [0.8, 1.2], b in [-0.2, 0.2]
        c, b = np.polyfit(images[i].ravel(), x[i].ravel(), 1)
        mean = images[i].mean()
        assert 0.8 - 1e-4 <= c <= 1.2 + 1e-4 and abs(b - mean * (1 - c)) <= 0.2 + 1e-4


def test_numpy_augment_config_takes_dicts_and_the_tf_config_and_rejects_unknown_options():
    from ggo.training.pipeline import AugmentConfig as TFAugmentConfig

    assert AugmentConfig.from_any(TFAugmentConfig(rotation_deg=3.0)) == AugmentConfig(rotation_deg=3.0)
    images, masks = disks(4)
    make_dataset(images, masks, batch_size=2, augment={"flip": False, "rotation_deg": 5})
    with pytest.raises(ValueError, match="rotation"):
        make_dataset(images, masks, batch_size=2, augment={"rotate": 5})
    with pytest.raises(ValueError, match="do not match"):
        make_dataset(images, masks[:3], batch_size=2)


# ------------------------------------------------------------------ config and backend selection
def test_backend_is_a_train_option_defaulting_to_tensorflow_and_checked_at_composition():
    from hydra.errors import ConfigCompositionException

    from ggo.config import compose, to_dict

    assert to_dict(compose([]))["train"]["backend"] == "tensorflow"
    assert to_dict(compose(["train.backend=jax"]))["train"]["backend"] == "jax"
    gpu = to_dict(compose(["train=gpu", "train.backend=jax"]))["train"]
    assert gpu["backend"] == "jax" and gpu["precision"] == "mixed_float16"
    with pytest.raises(ConfigCompositionException):
        compose(["train.backend=torch"])


def test_a_process_whose_keras_runs_on_tensorflow_refuses_train_backend_jax(monkeypatch):
    from ggo.runtime.backend import select_backend

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    select_backend("tensorflow")  # what keras already runs: fine
    with pytest.raises(RuntimeError, match="joblib"):
        select_backend("jax")


# ------------------------------------------------------------------ JaxGAN vs GAN
# Runs on either backend: in this process (TensorFlow) and in a JAX subprocess.
STEPS = '''
import json, sys
import numpy as np
import keras
from ggo.training import for_backend, set_precision

make_gan = for_backend(keras.backend.backend()).make_gan  # this process's backend, either one

# A lung head is the auxiliary head "lungs" (ggo.heads): the aux_heads case covers its loss too.
CASES = [
    {"name": "patchgan", "disc": "patchgan",
     "compile": {"d_steps": 2, "label_smoothing": 0.1, "bce_weight": 1.0, "dice_weight": 1.0}},
    {"name": "supervised", "disc": "none", "compile": {"dice_weight": 1.0}},
    {"name": "aux_heads", "disc": "patchgan", "aux_heads": ["heart", "lungs"],
     "compile": {"dice_weight": 1.0, "lung_weight": 10.0, "aux_weights": {"heart": 5.0}}},
    {"name": "same_pass", "disc": "patchgan",
     "compile": {"adversarial_update": "same_pass", "label_smoothing": 0.1, "dice_weight": 1.0}},
]


def run_case(case, workdir, save_init):
    """Two train steps on one batch from the same initial weights: losses and weights."""
    set_precision("float32")
    batch = np.load(f"{workdir}/batch.npz")
    gen = dict(depth=3, base_filters=4, max_filters=16, aux_heads=case.get("aux_heads", ()))
    gan = make_gan("unet", case["disc"], 32, gen, dict(base_filters=4, max_filters=16))
    targets = batch["y5"] if case.get("aux_heads") else batch["y"]
    d_opt = keras.optimizers.Adam(1e-3, beta_1=0.5) if case["disc"] != "none" else None
    gan.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), d_opt, **case["compile"])
    init = f"{workdir}/{case['name']}.init.weights.h5"
    if save_init:
        gan.save_weights(init)
    else:
        gan.load_weights(init)
    nets = [n for n in (gan.generator, gan.discriminator) if n is not None]
    before = [np.asarray(w) for n in nets for w in n.get_weights()]
    losses = []
    for _ in range(2):
        gan.reset_metrics()
        logs = gan.train_on_batch(batch["x"], targets, return_dict=True)
        keys = ("g_loss", "d_loss", "adv", "l1", "bce", "dice_loss", "lung", "dice", *case.get("aux_heads", ()))
        losses.append({k: float(logs[k]) for k in keys if k != "lungs"})
    after = [np.asarray(w) for n in nets for w in n.get_weights()]
    return losses, before, after


if __name__ == "__main__":
    workdir = sys.argv[1]
    out = {}
    for case in CASES:
        losses, _, after = run_case(case, workdir, save_init=False)
        np.savez(f"{workdir}/{case['name']}.jax.npz", *after)
        out[case["name"]] = losses
    print("RESULT " + json.dumps(out))
'''


@pytest.mark.slow
def test_tf_and_jax_train_steps_agree_from_the_same_weights_and_batch(jax_env, tmp_path):
    import keras

    rng = np.random.default_rng(0)
    y = (rng.random((4, 32, 32, 1)) > 0.7).astype(np.float32)
    x = (rng.normal(-0.5, 0.2, y.shape) + y).astype(np.float32)
    lungs = np.zeros_like(y)
    lungs[:, 4:28, 2:30] = 1
    weight = np.ones_like(y)
    weight[3] = 0  # one image without a lung annotation
    heart = np.zeros_like(y)
    heart[:, 8:24, 12:20] = 1
    heart_weight = np.ones_like(y)
    heart_weight[1] = 0  # another image without a heart annotation
    y5 = np.concatenate([y, heart, heart_weight, lungs, weight], -1)
    np.savez(tmp_path / "batch.npz", x=x, y=y, y5=y5)

    steps = {"__name__": "tf_steps"}
    exec(compile(STEPS, "steps", "exec"), steps)
    tf_runs = {}
    try:
        for case in steps["CASES"]:
            keras.utils.set_random_seed(0)
            tf_runs[case["name"]] = steps["run_case"](case, str(tmp_path), save_init=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")

    script = tmp_path / "steps.py"
    script.write_text(STEPS)
    jax_losses = result(run_jax([str(script), str(tmp_path)], jax_env, tmp_path))
    for name, (tf_losses, before, tf_after) in tf_runs.items():
        jx = jax_losses[name]
        for key in ("g_loss", "d_loss", "adv", "l1", "bce", "dice_loss", "lung", *(["heart"] if name == "aux_heads" else [])):
            # Step 1 starts from identical weights; step 2 from Adam's first update.
            assert jx[0][key] == pytest.approx(tf_losses[0][key], rel=1e-5, abs=1e-6), (name, key)
            assert jx[1][key] == pytest.approx(tf_losses[1][key], rel=1e-4, abs=1e-6), (name, key)
        with np.load(tmp_path / f"{name}.jax.npz") as saved:
            jax_after = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        # Adam's first steps move each weight by about +-lr whatever its gradient's size, so a
        # gradient near 0 may go either way: compare the updates as a whole.
        diff = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(tf_after, jax_after)))
        update = math.sqrt(sum(float(((a - w) ** 2).sum()) for a, w in zip(tf_after, before)))
        assert update > 0 and diff / update < 0.05, (name, diff / update)


# ------------------------------------------------------------------ JaxGAN on its own
@pytest.mark.slow
def test_jax_gan_learns_bright_blobs_with_fit_callbacks_and_checkpoints(jax_env, tmp_path):
    proc = run_jax_script(
        """
        out = sys.argv[1]
        assert GAN is JaxGAN
        x, y = blobs(16)
        vx, vy = blobs(8, seed=1)
        set_random_seed(0)
        gan = make_gan("unet", "patchgan", 32, GEN, DISC)
        gan.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5),
                    d_steps=2, label_smoothing=0.1)
        ckpt = keras.callbacks.ModelCheckpoint(f"{out}/best.weights.h5", monitor="val_dice", mode="max",
                                               save_best_only=True, save_weights_only=True)
        stop = keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", patience=50)
        augment = dict(flip=True, rotation_deg=5, scale=0.05, shift=0.05, brightness=0.05, contrast=0.05)
        history = gan.fit(  # 120 generator steps of batch 4
            make_dataset(x, y, batch_size=4, shuffle=True, augment=augment),
            validation_data=make_dataset(vx, vy, batch_size=8), epochs=30, callbacks=[ckpt, stop], verbose=0,
        ).history
        expected = set(LOSS_NAMES) | set(METRICS)
        assert expected | {f"val_{k}" for k in expected} <= set(history), sorted(history)
        fresh = make_gan("unet", "patchgan", 32, GEN, DISC)
        fresh.compile(keras.optimizers.Adam(), keras.optimizers.Adam())
        fresh.load_weights(f"{out}/best.weights.h5")
        reloaded = fresh.evaluate(make_dataset(vx, vy, batch_size=8), return_dict=True, verbose=0)["dice"]
        gan.save(f"{out}/gan.keras")
        loaded = keras.saving.load_model(f"{out}/gan.keras")
        same = np.allclose(loaded.predict(vx, verbose=0), gan.predict(vx, verbose=0), atol=1e-5)
        print("RESULT " + json.dumps({
            "val_dice": history["val_dice"], "d_loss": history["d_loss"][-1],
            "g_steps": int(gan.g_optimizer.iterations), "d_steps": int(gan.d_optimizer.iterations),
            "reloaded_dice": float(reloaded), "loaded_type": type(loaded).__name__, "same_predictions": bool(same),
        }))
        """,
        jax_env, tmp_path, str(tmp_path),
    )
    r = result(proc)
    assert max(r["val_dice"]) > 0.8, r["val_dice"]
    assert r["g_steps"] == 120 and r["d_steps"] == 240
    assert r["d_loss"] > 0.0
    assert r["reloaded_dice"] == pytest.approx(max(r["val_dice"]), abs=1e-4)
    assert r["loaded_type"] == "JaxGAN" and r["same_predictions"]


@pytest.mark.slow
def test_jax_same_pass_update_has_the_known_answer_and_learns(jax_env, tmp_path):
    from update_order import check_update_order_answers

    proc = run_jax_script(  # one JAX process for the known answer and the learning
        """
        sys.path.insert(0, sys.argv[1])
        from update_order import update_order_answers
        answers = update_order_answers()
        x, y = blobs(16)
        vx, vy = blobs(8, seed=1)
        set_random_seed(0)
        gan = make_gan("unet", "patchgan", 32, {**GEN, "base_filters": 8}, {**DISC, "n_layers": 2})
        gan.compile(keras.optimizers.Adam(2e-3, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5),
                    adversarial_update="same_pass")
        history = gan.fit(  # 80 steps of batch 4
            make_dataset(x, y, batch_size=4, shuffle=True), validation_data=make_dataset(vx, vy, batch_size=8),
            epochs=20, verbose=0,
        ).history
        print("RESULT " + json.dumps({"l1": history["l1"], "val_dice": history["val_dice"], "d_loss": history["d_loss"],
                                      "steps": [int(gan.g_optimizer.iterations), int(gan.d_optimizer.iterations)],
                                      "answers": answers}))
        """,
        jax_env, tmp_path, str(Path(__file__).parent),
    )
    r = result(proc)
    check_update_order_answers(r["answers"])
    assert r["steps"] == [80, 80]
    assert r["l1"][-1] < 0.5 * r["l1"][0] and r["d_loss"][-1] > 0.0
    assert max(r["val_dice"]) > 0.8, r["val_dice"]


@pytest.mark.slow
def test_jax_generator_weight_average_has_the_known_answer_its_own_batchnorm_statistics_and_learns(jax_env, tmp_path):
    from ema_answer import check_ema_answers

    check_ema_answers(result(run_jax([str(Path(__file__).with_name("ema_answer.py"))], jax_env, tmp_path)))


@pytest.mark.slow
def test_jax_gan_mixed_precisions_scale_losses_and_non_finite_losses_raise(jax_env, tmp_path):
    proc = run_jax_script(
        """
        from ggo.training.precision import gpu_available
        x, y = blobs(8)
        out = {"auto": set_precision("auto"), "gpu": gpu_available()}
        for mode in ("mixed_float16", "mixed_bfloat16"):
            set_precision(mode)
            set_random_seed(0)
            gan = make_gan("unet", "patchgan", 32, GEN, DISC)
            gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), dice_weight=1.0, bce_weight=1.0)
            history = gan.fit(make_dataset(x, y, batch_size=4), epochs=2, verbose=0).history
            out[mode] = {
                "finite": all(math.isfinite(v) for vs in history.values() for v in vs),
                "compute": gan.generator.get_layer("enc0_1_conv").compute_dtype,
                "logits": keras.backend.standardize_dtype(gan.generator.outputs[0].dtype),
                "d_logits": keras.backend.standardize_dtype(gan.discriminator.outputs[0].dtype),
                "scaled": [isinstance(o, keras.optimizers.LossScaleOptimizer) for o in (gan.g_optimizer, gan.d_optimizer)],
                "g_steps": int(gan.g_optimizer.iterations),
            }
        set_precision("float32")
        bad = x.copy()
        bad[0, 0, 0, 0] = np.nan
        gan = make_gan("unet", "none", 32, GEN)
        gan.compile(keras.optimizers.Adam(1e-3))
        try:
            gan.fit(make_dataset(bad, y, batch_size=4), epochs=2, verbose=0)
            out["error"] = None
        except NonFiniteLossError as exc:
            out["error"] = str(exc)
        print("RESULT " + json.dumps(out))
        """,
        jax_env, tmp_path,
    )
    r = result(proc)
    from ggo.training.precision import auto_precision, read_cpuinfo

    assert r["gpu"] is False and r["auto"] == auto_precision(gpu=False, cpuinfo=read_cpuinfo())
    for mode, compute in (("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")):
        assert r[mode]["finite"] and r[mode]["compute"] == compute, r[mode]
        assert r[mode]["logits"] == r[mode]["d_logits"] == "float32"
        assert r[mode]["scaled"] == [mode == "mixed_float16"] * 2
        assert r[mode]["g_steps"] == 4
    assert r["error"] and "g_loss" in r["error"] and "epoch 0" in r["error"] and "batch 0" in r["error"]


# ------------------------------------------------------------------ the CLI, without TensorFlow
@pytest.mark.slow
def test_train_cli_on_jax_trains_evaluates_and_tracks_to_mlflow_without_importing_tensorflow(jax_env, tmp_path, tracking_uri):
    import mlflow

    proc = run_jax(["-m", "ggo.train", "train.backend=jax", *tiny_overrides(tmp_path, tracking_uri)], jax_env, tmp_path, cwd=tmp_path)
    assert "epoch   2/2" in proc.stdout and "[ggo] best epoch" in proc.stdout, proc.stdout[-2000:]
    client = mlflow.MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ggo").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["ggo.backend"] == "jax" and run.data.params["train.backend"] == "jax"
    for key in ("train/g_loss", "train/d_loss", "train/dice", "val/dice"):
        assert len(client.get_metric_history(run.info.run_id, key)) >= 2, key
    assert {"val/dice", "test/dice", "test/specificity"} <= set(run.data.metrics)
    # The generator trained on JAX serves here, on TensorFlow.
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    rgb = np.random.default_rng(0).integers(0, 255, size=(90, 120, 3), dtype=np.uint8)
    masks = model.predict([rgb])
    assert masks[0].shape == (90, 120) and set(np.unique(masks[0])) <= {0, 1}


# ------------------------------------------------------------------ the GPU check, on a CPU
def test_the_gpu_check_module_imports_nothing_the_device_lacks():
    """The device has JAX, Keras and numpy only: importing ggo, ggo.bench and ggo.bench.gpu (and
    reading its --help) must load no TensorFlow, MLflow, Hydra, OpenCV, pandas or Keras."""
    probe = (
        "import sys, contextlib, io\n"
        "import ggo, ggo.bench, ggo.bench.gpu\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    ggo.bench.gpu.main(['--help'])\n"
        "heavy = ('tensorflow', 'mlflow', 'hydra', 'omegaconf', 'cv2', 'pandas', 'keras', 'jax', 'torch')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", f"importing the GPU check loaded {proc.stdout.strip()}"


@pytest.mark.slow
def test_gpu_check_reports_every_precision_from_a_written_cache(jax_env, tmp_path):
    from ggo.bench import gpu

    source = tmp_path / "cache"
    source.mkdir()
    images, masks = disks(12, size=64)
    np.save(source / "images.npy", images * 2 - 1)
    np.save(source / "masks.npy", masks.astype(np.uint8))
    npz = tmp_path / "cache_64.npz"
    assert gpu.main(["--write-cache", str(npz), "--from", str(source), "--n", "8"]) == 0
    loaded_images, loaded_masks = gpu.load_cache(str(npz), 32)  # 64 -> 32 block average
    assert loaded_images.shape == loaded_masks.shape == (8, 32, 32, 1)
    assert set(np.unique(loaded_masks).tolist()) <= {0.0, 1.0}
    assert gpu.main(["--write-cache", str(npz), "--from", str(tmp_path / "nowhere")]) == 2  # names the folder

    # As on the device: python3 -m ggo.bench.gpu, one process per precision, no TensorFlow anywhere.
    out = tmp_path / "gpu_check.json"
    proc = run_jax(
        ["-m", "ggo.bench.gpu", "--cache", str(npz), "--resolution", "64", "--steps", "3",
         "--warmup", "1", "--batch", "4", "--depth", "3", "--gen-filters", "4", "--disc-filters", "4",
         "--max-filters", "16", "--out", str(out)],
        jax_env, tmp_path, cwd=tmp_path,
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["precision"] for r in rows] == ["float32", "mixed_float16", "mixed_bfloat16"]
    for r in rows:
        assert "error" not in r, r
        assert r["fit_images_per_s"] > 0 and r["step_images_per_s"] > 0 and r["finite"]
        assert r["peak_gpu_gib"] is None  # a CPU has no memory_stats
        assert r["resolution"] == 64 and r["batch"] == 4 and r["steps"] == 3
    assert (rows[1]["loss_scale"] or 0) > 0 and rows[0]["loss_scale"] is None
    assert "precision | fit_images_per_s" in proc.stdout


# ------------------------------------------------------------------ the benchmark, on JAX
@pytest.mark.slow
def test_bench_on_jax_times_training_pipeline_and_inference_without_tensorflow(jax_env, tmp_path):
    out = tmp_path / "bench-jax.json"
    args = [
        "-m", "ggo.bench", "--backend", "jax", "--resolutions", "64", "--gens", "unet", "--precisions", "float32",
        "--xla", "off", "--steps", "2", "--windows", "2", "--warmup-steps", "1", "--base-filters", "4",
        "--disc-base-filters", "4", "--batch-size", "2", "--inference-files", "2", "--inference-size", "128",
        "--skip-overhead", "--skip-memory", "--out", str(out), "--workdir", str(tmp_path),
    ]  # fmt: skip  (the memory run is tests/test_bench.py's; a CLI training run on JAX is test_train_cli_on_jax_...)
    env = {**jax_env, "GGO_CACHE": str(tmp_path / "cache")}
    proc = run_jax(args, env, tmp_path, cwd=tmp_path, timeout=400)
    result = json.loads(out.read_text())
    assert result["machine"]["backend"] == "jax" and result["machine"]["jax"]
    assert "JAX" in proc.stdout and "on jax" in proc.stdout
    (row,) = result["train"]
    assert "error" not in row, row["error"]
    assert row["images_per_s"] > 0 and row["finite"]
    assert row["reference_images_per_s"] is None and "TensorFlow" in row["reference_skipped"]
    assert result["input_pipeline_images_per_s"] > 0
    assert result["inference_images_per_s"] > 0
    assert result["peak_rss_mb"] is None  # --skip-memory
    assert not result["errors"], result["errors"]
