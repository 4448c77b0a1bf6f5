"""One run, end to end: data -> models -> fit -> evaluate -> track. Plain arguments only.

:func:`run_job` is what the Hydra task calls (and what tests and notebooks can call directly):
it opens the run's tracker, validates the config, trains, evaluates the best checkpoint on val
and test, logs everything, and turns any failure into a FAILED (or, on interrupt, KILLED) run with
the error recorded, so a sweep never loses what it already recorded.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np
from tqdm.auto import tqdm

from ggo.config import flatten, validate
from ggo.inference import predict_probs
from ggo.tracking import Tracker, open_tracker, record_failure

# Keras log keys of the GAN model -> our metric names (``val_`` prefix -> ``val/``).
_SHOW = ("g_loss", "d_loss", "dice", "val_dice")


def metric_name(keras_key: str) -> str:
    """``val_dice`` -> ``val/dice``; ``g_loss`` -> ``train/g_loss``."""
    if keras_key.startswith("val_"):
        return "val/" + keras_key[4:]
    return "train/" + keras_key


def run_job(
    config: Mapping[str, Any],
    *,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    workdir: str | Path,
    raise_errors: bool = True,
) -> float:
    """Train and track one run; return the objective (``config["objective"]``), NaN on failure.

    With ``raise_errors=False`` (inside a sweep) an exception is recorded on the run and NaN is
    returned, so the other jobs go on; a KeyboardInterrupt always marks the run KILLED and
    propagates.
    """
    config = dict(config)
    run_tags = {
        "gen": config["gen"]["name"] + ("+lungs" if config["gen"].get("lung_head") else ""),
        "disc": config["disc"]["name"],
        "loss": _loss_label(config["loss"], adversarial=config["disc"]["name"] != "none"),
        "resolution": config["preprocess"]["resolution"],
        "fold": config["data"]["fold"],
        "data": config["data"]["name"],
        **({"ggo.trial_id": config["trial_id"]} if config.get("trial_id") is not None else {}),
        **(tags or {}),
    }
    tracker = open_tracker(config["tracking"], run_name=run_name, tags=run_tags, parent_run_id=parent_run_id)
    if tracker.run_id:
        print(f"[ggo] run {run_name!r}: MLflow run {tracker.run_id}", flush=True)
    try:
        tracker.log_params(flatten({k: v for k, v in config.items()}))
        validate(config)
        metrics = run_experiment(config, tracker, workdir=Path(workdir))
    except KeyboardInterrupt as exc:
        record_failure(tracker, exc, traceback.format_exc(), "KILLED")
        raise
    except Exception as exc:  # noqa: BLE001 - any failure ends this run, not the sweep
        record_failure(tracker, exc, traceback.format_exc(), "FAILED")
        if raise_errors:
            raise
        print(f"[ggo] run {run_name!r} FAILED: {type(exc).__name__}: {exc}", flush=True)
        return float("nan")
    tracker.finish("FINISHED")
    return float(metrics.get(config.get("objective", "val/dice"), float("nan")))


def _loss_label(loss: Mapping[str, Any], *, adversarial: bool = True) -> str:
    """``l1+dice+adv_bce``: the active terms (no adversarial term without a discriminator)."""
    parts = [name for name in ("l1", "bce", "dice") if loss.get(name, 0) > 0]
    adv = adversarial and loss.get("adversarial", 0) > 0
    return "+".join(parts) + (f"+adv_{loss['adversarial_mode']}" if adv else "")


def run_experiment(config: Mapping[str, Any], tracker: Tracker, *, workdir: Path) -> dict[str, float]:
    """Train the configured GAN on fold ``data.fold`` and evaluate its best epoch. Returns final metrics."""
    from ggo.data import prepare_from_config
    from ggo.metrics import evaluate
    from ggo.postprocess import postprocess_probs
    from ggo.models import build_discriminator, build_generator, receptive_field
    from ggo.training import GAN, AugmentConfig, RaiseOnNonFinite, make_dataset, make_schedule, set_precision
    from ggo.viz import curves_figure

    t, g, d, loss = config["train"], config["gen"], config["disc"], config["loss"]
    res = int(config["preprocess"]["resolution"])
    workdir.mkdir(parents=True, exist_ok=True)
    tracker.log_dict(config, "config.yaml")

    started = time.perf_counter()
    # GAN/make_dataset (ggo.training) are the JAX or the TensorFlow ones, per Keras' backend.
    from ggo.training import set_random_seed  # keras.utils' would import TensorFlow under JAX

    backend, wanted = keras.backend.backend(), t.get("backend", "tensorflow")
    if backend != wanted:
        raise RuntimeError(
            f"train.backend={wanted}, but Keras runs on {backend!r} in this process: set "
            f"KERAS_BACKEND={wanted} before anything imports keras (python -m ggo.train does so)"
        )
    tracker.set_tags({"ggo.backend": backend})
    policy = set_precision(t["precision"])
    set_random_seed(int(t["seed"]))
    cache = prepare_from_config(config["data"], config["preprocess"], progress=True)
    splits = cache.split(int(config["data"]["fold"]))
    train, val, test = splits["train"], splits["val"], splits["test"]
    tracker.set_tags({"ggo.precision": policy, "ggo.cache": str(cache.path)})
    tracker.log_params({"data.n_train": len(train), "data.n_val": len(val), "data.n_test": len(test)})
    print(f"[ggo] data: {len(train)} train / {len(val)} val / {len(test)} test images at {res} px; precision {policy}", flush=True)

    gen_opts = {k: v for k, v in g.items() if k != "name"}
    lung_head = bool(g.get("lung_head", False))
    disc_opts = {k: v for k, v in d.items() if k != "name"}
    generator = build_generator(g["name"], res, **gen_opts)
    discriminator = build_discriminator(d["name"], res, **disc_opts)
    if discriminator is not None:
        rf = receptive_field(discriminator)
        tracker.set_tags({"disc": f"patchgan{rf}", "ggo.disc_receptive_field": rf})

    batch = int(t["batch_size"])
    steps = max(1, math.ceil(len(train) / batch))
    epochs = int(t["epochs"])

    def optimizer(lr: float) -> Any:
        schedule = make_schedule(lr, t["lr_schedule"], total_steps=epochs * steps, warmup_steps=int(t["warmup_epochs"]) * steps)
        return keras.optimizers.Adam(learning_rate=schedule, beta_1=float(t["beta_1"]))

    gan = GAN(generator, discriminator)
    gan.compile(
        g_optimizer=optimizer(t["g_lr"]),
        d_optimizer=optimizer(t["d_lr"]) if discriminator is not None else None,
        adversarial_weight=float(loss["adversarial"]),
        l1_weight=float(loss["l1"]),
        bce_weight=float(loss["bce"]),
        dice_weight=float(loss["dice"]),
        lung_weight=float(loss.get("lung", 0.0)) if lung_head else 0.0,
        adversarial_mode=loss["adversarial_mode"],
        label_smoothing=float(loss["label_smoothing"]),
        d_steps=int(t["d_steps"]),
        jit_compile=bool(t["jit_compile"]),
    )
    train_ds = make_dataset(
        train.images, train.targets(lung_head), batch_size=batch, shuffle=True, augment=AugmentConfig(**t["augment"]),
        seed=int(t["seed"]),
    )  # fmt: skip
    val_ds = make_dataset(val.images, val.targets(lung_head), batch_size=batch)

    n_show = min(int(config["tracking"].get("n_images", 4)), len(val))
    logger = EpochLogger(
        tracker,
        epochs=epochs,
        steps=steps,
        images=val.images[:n_show],
        masks=val.masks[:n_show],
        image_every=int(config["tracking"].get("image_every", 5)),
    )
    best = BestGenerator(generator)
    callbacks: list[Any] = [RaiseOnNonFinite(), best, logger]
    if int(t["patience"]) > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_dice", mode="max", patience=int(t["patience"])))
    # -- resume (a Keras Tuner Hyperband trial continuing its parent trial's checkpoint) --------
    initial_epoch = int(t.get("initial_epoch", 0))
    if not 0 <= initial_epoch < epochs:
        raise ValueError(f"train.initial_epoch={initial_epoch}: must be in 0..{epochs - 1} (train.epochs={epochs})")
    if t.get("resume_from"):
        gan.load_weights(str(t["resume_from"]))
        tracker.set_tags({"ggo.resumed_from": t["resume_from"], "ggo.initial_epoch": initial_epoch})
        if len(val):  # the loaded generator's score, computed as the final val/dice is: the parent's, exactly
            ev = config.get("eval", {})
            probs = predict_probs(generator, val.images, tta_flip=bool(ev.get("tta_flip")))
            thr = float(ev.get("threshold", 0.5))
            resumed = evaluate(val.masks, postprocess_probs(probs, int(ev.get("min_component_px", 0)), thr), thr)
            tracker.log_metrics({"val/dice_resumed": float(resumed["dice"])}, step=initial_epoch)
    # -----------------------------------------------------------------------------------------------
    fit_started = time.perf_counter()
    gan.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)
    fit_seconds = time.perf_counter() - fit_started
    best.restore()
    gan.save_weights(str(workdir / "checkpoint.weights.h5"))  # best generator; what a continued trial resumes from

    # Final evaluation of the best checkpoint, on the full val and test sets.
    ev = config.get("eval", {})
    val_probs = predict_probs(generator, val.images, tta_flip=bool(ev.get("tta_flip")))
    test_probs = predict_probs(generator, test.images, tta_flip=bool(ev.get("tta_flip")))
    min_px, threshold = int(ev.get("min_component_px", 0)), float(ev.get("threshold", 0.5))
    final: dict[str, float] = {}
    for split, probs, data in (("val", val_probs, val), ("test", test_probs, test)):
        if len(data):
            scores = evaluate(data.masks, postprocess_probs(probs, min_px, threshold), threshold)
            final.update({f"{split}/{k}": float(v) for k, v in scores.items()})
    final["train/epochs_run"] = float(logger.epochs_run)
    final["train/best_epoch"] = float(best.best_epoch)
    final["train/seconds"] = fit_seconds
    final["train/seconds_per_epoch"] = fit_seconds / max(1, logger.epochs_run)
    tracker.log_metrics(final, step=logger.epochs_run + 1)
    if n_show:
        logger.log_overlays(logger.epochs_run + 1, tag="best")

    preds_path = workdir / "probabilities.npz"
    np.savez_compressed(
        preds_path,
        val_names=np.array(val.names), val_probs=val_probs.astype(np.float16),
        test_names=np.array(test.names), test_probs=test_probs.astype(np.float16),
    )
    tracker.log_artifact(preds_path, "predictions")
    tracker.log_figure(curves_figure(logger.history, title=_title(config)), "dsc_curve.png")
    tracker.log_dict({k: list(v) for k, v in logger.history.items()}, "history.json")

    if config["tracking"].get("enabled") and config["tracking"].get("log_model", True):
        from ggo.serving import log_segmenter

        model_path = export_generator(generator, g, res, workdir / "generator.keras")
        log_segmenter(tracker, [model_path], _serving_config(config), workdir / "model")
    total = time.perf_counter() - started
    tracker.log_metrics({"train/job_seconds": total}, step=logger.epochs_run + 1)
    summary = ", ".join(f"{k} {final[k]:.3f}" for k in ("val/dice", "test/dice", "test/precision", "test/recall") if k in final)
    print(f"[ggo] best epoch {best.best_epoch}: {summary} ({total:.0f}s)", flush=True)
    return final


def _title(config: Mapping[str, Any]) -> str:
    return (
        f"{config['gen']['name']} + {config['disc']['name']} / {_loss_label(config['loss'], adversarial=config['disc']['name'] != 'none')} / "
        f"{config['preprocess']['resolution']} px / fold {config['data']['fold']}"
    )


def _serving_config(config: Mapping[str, Any]) -> dict[str, Any]:
    p = config["preprocess"]
    return {
        "resolution": int(p["resolution"]),
        "fit": p["fit"],
        "clahe": bool(p["clahe"]),
        "clahe_clip": float(p["clahe_clip"]),
        "threshold": float(config.get("eval", {}).get("threshold", 0.5)),
        "tta_flip": bool(config.get("eval", {}).get("tta_flip", False)),
        "min_component_px": int(config.get("eval", {}).get("min_component_px", 0)),
        "gen": config["gen"]["name"],
    }


def export_generator(generator: Any, gen_config: Mapping[str, Any], resolution: int, path: Path) -> Path:
    """Save ``generator`` as a float32 ``.keras`` file, whatever precision trained it.

    A model saved under mixed_float16 would compute in float16 wherever it is loaded, which CPUs
    run slowly or not at all; rebuilding under float32 and copying the weights makes the shipped
    model portable.
    """
    from ggo.models import build_generator

    previous = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("float32")
        clone = build_generator(gen_config["name"], resolution, **{k: v for k, v in gen_config.items() if k != "name"})
        clone.set_weights([np.asarray(w, np.float32) for w in generator.get_weights()])
        clone.save(path)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return path


class BestGenerator(keras.callbacks.Callback):
    """Keeps the generator weights of the best ``val_dice`` epoch in memory; :meth:`restore` puts them back."""

    def __init__(self, generator: Any) -> None:
        super().__init__()
        self.generator = generator
        self.best = -math.inf
        self.best_epoch = 0
        self.weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float((logs or {}).get("val_dice", float("nan")))
        if math.isfinite(value) and value > self.best:
            self.best, self.best_epoch = value, epoch + 1
            self.weights = [np.array(w) for w in self.generator.get_weights()]

    def restore(self) -> None:
        if self.weights is not None:
            self.generator.set_weights(self.weights)


class EpochLogger(keras.callbacks.Callback):
    """Per-epoch tracking and progress: metrics as ``split/name``, val overlays, a bar and a line."""

    def __init__(
        self, tracker: Tracker, *, epochs: int, steps: int, images: np.ndarray, masks: np.ndarray, image_every: int
    ) -> None:
        super().__init__()
        self.tracker, self.epochs, self.steps = tracker, epochs, steps
        self.images, self.masks, self.image_every = images, masks, max(1, image_every)
        self.history: dict[str, list[float]] = {}
        self.epochs_run = 0
        self.bar: Any = None
        self.started = 0.0
        self.best = -math.inf
        self.last_image_step = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False, unit="batch", disable=None)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            logs = logs or {}
            self.bar.set_postfix({k: f"{float(logs[k]):.3f}" for k in ("g_loss", "dice") if k in logs})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
        logs = logs or {}
        step = epoch + 1
        self.epochs_run = step
        metrics = {metric_name(k): float(v) for k, v in logs.items() if np.ndim(v) == 0}
        metrics["train/epoch_seconds"] = time.perf_counter() - self.started
        for k, v in metrics.items():
            self.history.setdefault(k, []).append(v)
        self.tracker.log_metrics(metrics, step=step)
        val = metrics.get("val/dice", float("nan"))
        mark = ""
        if math.isfinite(val) and val > self.best:
            self.best, mark = val, "  *best"
        shown = "  ".join(f"{metric_name(k)} {float(logs[k]):.4f}" for k in _SHOW if k in logs)
        print(f"epoch {step:3d}/{self.epochs}  {shown}  ({metrics['train/epoch_seconds']:.1f}s){mark}", flush=True)
        if len(self.images) and (step == 1 or step % self.image_every == 0):
            self.log_overlays(step)

    def on_train_end(self, logs: dict | None = None) -> None:
        if len(self.images) and self.epochs_run and self.last_image_step != self.epochs_run:
            self.log_overlays(self.epochs_run)

    def log_overlays(self, step: int, tag: str = "") -> None:
        """Input | truth | prediction | both, for the fixed val images, at ``step``."""
        from ggo.viz import overlay_grid

        probs = predict_probs(self.model.generator, self.images)
        key = "val_overlays" + (f"_{tag}" if tag else "")
        self.tracker.log_image(overlay_grid(self.images, self.masks, probs), key=key, step=step)
        self.last_image_step = step


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(dict(data), indent=2, default=str))
