"""One run, end to end: data -> models -> fit -> evaluate -> track. Plain arguments only.

:func:`run_job` is what the Hydra task calls (and what tests and notebooks can call directly):
it opens the run's tracker, validates the config, trains, evaluates the best checkpoint on val
and test, logs everything, and turns any failure into a FAILED (or, on interrupt, KILLED) run with
the error recorded, so a sweep never loses what it already recorded.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np

from ggo.config import flatten, validate
from ggo.evaluation.evaluate import EvalSettings, evaluate_splits, per_image_scores
from ggo.evaluation.ggo_free import area_metrics, log_ggo_free, score_ggo_free
from ggo.heads import LUNGS, resolve_heads
from ggo.evaluation.scores import log_per_image
from ggo.tracking import Tracker, open_tracker, record_failure
from ggo.training.callbacks import BestGenerator, EarlyStoppingOnValidation, EpochLogger, validation_epochs


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
        "gen": _gen_label(config),
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
        config = _resolved(config)
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


def heads_of(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The run's auxiliary heads in channel order (``gen.lung_head`` and ``gen.aux_heads``)."""
    gen = config["gen"]
    return resolve_heads(bool(gen.get("lung_head", False)), gen.get("aux_heads") or ())


def _gen_label(config: Mapping[str, Any]) -> str:
    """``unet``, ``unet+lungs``, ``unet+lungs+heart``: the generator and its heads (the name alone
    when the heads are invalid: :func:`ggo.config.validate` then fails the run, naming them)."""
    try:
        return "+".join([config["gen"]["name"], *heads_of(config)])
    except ValueError:
        return config["gen"]["name"]


def head_weights(config: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
    """``(lung_weight, aux_weights)`` for ``GAN.compile``: ``loss.lung`` when the lungs are a
    head (else 0), and ``loss.aux.<head>`` for each other head."""
    heads, loss = heads_of(config), config["loss"]
    lung = float(loss.get("lung", 0.0)) if LUNGS in heads else 0.0
    return lung, {h: float((loss.get("aux") or {})[h]) for h in heads if h != LUNGS}


def _resolved(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with what this machine decides filled in: ``train.precision=auto`` becomes the
    policy it stands for here, so the run's params, ``config.yaml`` and tag all say what ran."""
    from ggo.training.precision import resolve_precision

    train = dict(config["train"])
    train["precision"] = resolve_precision(str(train["precision"]))
    return {**config, "train": train}


def _loss_label(loss: Mapping[str, Any], *, adversarial: bool = True) -> str:
    """``l1+dice+adv_bce``: the active terms (no adversarial term without a discriminator)."""
    parts = [name for name in ("l1", "bce", "dice") if loss.get(name, 0) > 0]
    adv = adversarial and loss.get("adversarial", 0) > 0
    return "+".join(parts) + (f"+adv_{loss['adversarial_mode']}" if adv else "")


@dataclass
class RunData:
    """The fold's splits (each with ``images``, ``masks``, ``names``, ``targets()``) and resolution.
    ``val``/``test`` hold GGO films only; ``val_ggo_free``/``test_ggo_free`` the GGO-free films
    of val and test patients (scored for predicted GGO area, :mod:`ggo.evaluation.ggo_free`)."""

    train: Any
    val: Any
    test: Any
    resolution: int
    trainer: Any  # the backend's GAN class and input pipeline (ggo.training.for_backend)
    val_ggo_free: Any = None
    test_ggo_free: Any = None


@dataclass
class Fitted:
    """The trained GAN (best epoch restored) and what its callbacks recorded."""

    gan: Any
    logger: EpochLogger
    best: BestGenerator
    seconds: float


def run_experiment(config: Mapping[str, Any], tracker: Tracker, *, workdir: Path) -> dict[str, float]:
    """Train the configured GAN on fold ``data.fold`` and evaluate its best epoch. Returns final metrics.

    Stages: :func:`prepare` (backend, precision, seed, data), :func:`build_gan`, :func:`fit_gan`
    (with a Hyperband resume), :func:`evaluate_best`, :func:`log_outputs` (artifacts, model).
    """
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    tracker.log_dict(config, "config.yaml")
    data = prepare(config, tracker)
    gan = build_gan(config, tracker, data)
    fitted = fit_gan(config, tracker, gan, data, workdir)
    final, probs = evaluate_best(config, tracker, fitted, data)
    log_outputs(config, tracker, fitted, data, probs, workdir)
    total = time.perf_counter() - started
    tracker.log_metrics({"train/job_seconds": total}, step=fitted.logger.epochs_run + 1)
    summary = ", ".join(f"{k} {final[k]:.3f}" for k in ("val/dice", "test/dice", "test/precision", "test/recall") if k in final)
    print(f"[ggo] best epoch {fitted.best.best_epoch}: {summary} ({total:.0f}s)", flush=True)
    return final


def prepare(config: Mapping[str, Any], tracker: Tracker) -> RunData:
    """Check the Keras backend, set precision and seed, and load the fold's splits from the cache."""
    from ggo.data import prepare_from_config
    from ggo.training import for_backend, set_precision, set_random_seed

    t = config["train"]
    trainer = for_backend(t.get("backend", "tensorflow"))  # raises unless Keras runs that backend
    from ggo.runtime.threads import limit_threads  # train.threads: set before TensorFlow starts its thread pools
    limit_threads(t.get("threads"), backend=trainer.backend)
    tracker.set_tags({"ggo.backend": trainer.backend})
    policy = set_precision(t["precision"])
    set_random_seed(int(t["seed"]))
    res = int(config["preprocess"]["resolution"])
    cache = prepare_from_config(config["data"], config["preprocess"], progress=True)
    heads, fold = heads_of(config), int(config["data"]["fold"])
    splits = cache.split(fold, train_ggo_free=bool(config["data"].get("train_ggo_free", False)), aux_heads=heads)
    free = cache.ggo_free_split(fold)
    data = RunData(splits["train"], splits["val"], splits["test"], res, trainer, free["val"], free["test"])
    if heads:
        _log_head_counts(config, tracker, data, heads)
    tracker.set_tags({"ggo.precision": policy, "ggo.cache": str(cache.path)})
    tracker.log_params({"data.n_train": len(data.train), "data.n_val": len(data.val), "data.n_test": len(data.test)})
    negatives = f" (+ GGO-free: {len(data.val_ggo_free)} val, {len(data.test_ggo_free)} test)" if len(data.val_ggo_free) + len(data.test_ggo_free) else ""
    print(f"[ggo] data: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images{negatives} at {res} px; "
          f"precision {policy}", flush=True)  # fmt: skip
    return data


def _log_head_counts(config: Mapping[str, Any], tracker: Tracker, data: RunData, heads: tuple[str, ...]) -> None:
    """Log and print how many training films teach each auxiliary head; refuse a head none teaches."""
    counts = data.train.known_counts(aux_heads=heads)
    tracker.log_params({f"data.n_train_{h}": n for h, n in counts.items()})
    print("[ggo] auxiliary heads, training films with a known target: "
          + ", ".join(f"{h} {n}/{len(data.train)}" for h, n in counts.items()), flush=True)  # fmt: skip
    untaught = [h for h, n in counts.items() if n == 0]
    if untaught:
        raise ValueError(
            f"gen.aux_heads: no training film of fold {config['data']['fold']} has a known target for {untaught} "
            f"(data={config['data']['name']}; a folder dataset annotates only lungs/): drop them from gen.aux_heads"
        )


def build_gan(config: Mapping[str, Any], tracker: Tracker, data: RunData) -> Any:
    """The generator and discriminator of the config, wrapped in the backend's GAN and compiled."""
    from ggo.models import build_models, receptive_field
    from ggo.training import make_schedule

    t, loss = config["train"], config["loss"]
    generator, discriminator = build_models(config["gen"], config["disc"], data.resolution)
    if discriminator is not None:
        rf = receptive_field(discriminator)
        tracker.set_tags({"disc": f"patchgan{rf}", "ggo.disc_receptive_field": rf})
    steps, epochs = _steps_per_epoch(config, data), int(t["epochs"])

    def optimizer(lr: float, updates_per_batch: int = 1, ema: float = 0.0) -> Any:
        # A schedule counts optimizer updates: the discriminator makes d_steps per batch.
        n = steps * updates_per_batch
        schedule = make_schedule(lr, t["lr_schedule"], total_steps=epochs * n, warmup_steps=int(t["warmup_epochs"]) * n)
        averaging = {"use_ema": True, "ema_momentum": ema} if ema > 0 else {}  # Keras' EMA of the weights
        return keras.optimizers.Adam(learning_rate=schedule, beta_1=float(t["beta_1"]), **averaging)

    gan = data.trainer.GAN(generator, discriminator)
    lung_weight, aux_weights = head_weights(config)
    gan.compile(
        g_optimizer=optimizer(t["g_lr"], ema=float(t.get("ema", 0.0))),
        d_optimizer=optimizer(t["d_lr"], int(t["d_steps"])) if discriminator is not None else None,
        adversarial_weight=float(loss["adversarial"]),
        l1_weight=float(loss["l1"]),
        bce_weight=float(loss["bce"]),
        dice_weight=float(loss["dice"]),
        lung_weight=lung_weight,
        aux_weights=aux_weights,
        adversarial_mode=loss["adversarial_mode"],
        label_smoothing=float(loss["label_smoothing"]),
        d_steps=int(t["d_steps"]),
        adversarial_update=str(t.get("adversarial_update", "sequential")),
        jit_compile=bool(t["jit_compile"]),
    )
    return gan


def _steps_per_epoch(config: Mapping[str, Any], data: RunData) -> int:
    return max(1, math.ceil(len(data.train) / int(config["train"]["batch_size"])))


def fit_gan(config: Mapping[str, Any], tracker: Tracker, gan: Any, data: RunData, workdir: Path) -> Fitted:
    """Fit (from a parent trial's checkpoint when resuming), restore the best epoch, save it."""
    from ggo.training import AugmentConfig, RaiseOnNonFinite

    t = config["train"]
    heads = heads_of(config)
    batch, epochs = int(t["batch_size"]), int(t["epochs"])
    make_dataset = data.trainer.make_dataset
    train_ds = make_dataset(
        data.train.images, data.train.targets(aux_heads=heads), batch_size=batch, shuffle=True,
        augment=AugmentConfig(**t["augment"]), seed=int(t["seed"]),
    )  # fmt: skip
    val_ds = make_dataset(data.val.images, data.val.targets(aux_heads=heads), batch_size=batch)
    n_show = min(int(config["tracking"].get("n_images", 4)), len(data.val))
    logger = EpochLogger(
        tracker, epochs=epochs, steps=_steps_per_epoch(config, data), images=data.val.images[:n_show],
        masks=data.val.masks[:n_show], image_every=int(config["tracking"].get("image_every", 5)),
        lung_gate=EvalSettings.from_config(config.get("eval")).lung_gate,
    )  # fmt: skip
    best = BestGenerator(gan.generator)
    callbacks: list[Any] = [RaiseOnNonFinite(), best, logger]
    val_every = int(t.get("val_every", 1))
    if int(t["patience"]) > 0:
        callbacks.append(EarlyStoppingOnValidation(patience_epochs=int(t["patience"]), val_every=val_every))
    initial_epoch = resume(config, tracker, gan, data)
    fit_started = time.perf_counter()
    gan.fit(
        train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0,
        validation_freq=validation_epochs(initial_epoch, epochs, val_every),
    )  # fmt: skip
    seconds = time.perf_counter() - fit_started
    best.restore()
    gan.save_weights(str(workdir / "checkpoint.weights.h5"))  # best generator; what a continued trial resumes from
    return Fitted(gan, logger, best, seconds)


def resume(config: Mapping[str, Any], tracker: Tracker, gan: Any, data: RunData) -> int:
    """A Keras Tuner Hyperband trial continuing its parent trial: load the parent's checkpoint and
    log its score as ``val/dice_resumed`` (computed as the final ``val/dice`` is: the parent's,
    exactly). Returns the epoch to start from."""
    t = config["train"]
    initial_epoch, epochs = int(t.get("initial_epoch", 0)), int(t["epochs"])
    if not 0 <= initial_epoch < epochs:
        raise ValueError(f"train.initial_epoch={initial_epoch}: must be in 0..{epochs - 1} (train.epochs={epochs})")
    if t.get("resume_from"):
        gan.load_weights(str(t["resume_from"]))
        tracker.set_tags({"ggo.resumed_from": t["resume_from"], "ggo.initial_epoch": initial_epoch})
        if len(data.val):
            scores, _ = evaluate_splits(gan.generator, {"val": data.val}, EvalSettings.from_config(config.get("eval")))
            tracker.log_metrics({"val/dice_resumed": scores["val/dice"]}, step=initial_epoch)
    return initial_epoch


def evaluate_best(
    config: Mapping[str, Any], tracker: Tracker, fitted: Fitted, data: RunData
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Score the best checkpoint on the full val and test sets (:mod:`ggo.evaluation.evaluate`); log the
    final metrics and the best epoch's overlays. Returns the metrics and the raw probability maps."""
    settings = EvalSettings.from_config(config.get("eval"))
    splits = {"val": data.val, "test": data.test}
    final, probs = evaluate_splits(fitted.gan.generator, splits, settings)
    log_per_image(tracker, per_image_scores(splits, probs, settings))
    free = score_ggo_free(fitted.gan.generator, {"val": data.val_ggo_free, "test": data.test_ggo_free}, settings)
    log_ggo_free(tracker, free)
    final.update(area_metrics(free))  # val/ggo_free_area, test/ggo_free_area where the split has such films
    logger = fitted.logger
    final["train/epochs_run"] = float(logger.epochs_run)
    final["train/best_epoch"] = float(fitted.best.best_epoch)
    final["train/seconds"] = fitted.seconds
    final["train/seconds_per_epoch"] = fitted.seconds / max(1, logger.epochs_run)
    tracker.log_metrics(final, step=logger.epochs_run + 1)
    if len(logger.images):
        logger.log_overlays(logger.epochs_run + 1, tag="best")
    return final, probs


def log_outputs(
    config: Mapping[str, Any], tracker: Tracker, fitted: Fitted, data: RunData, probs: Mapping[str, np.ndarray], workdir: Path
) -> None:
    """The probability maps, curves and history as artifacts, and the generator as a served model."""
    from ggo.evaluation.viz import curves_figure

    preds_path = workdir / "probabilities.npz"
    np.savez_compressed(
        preds_path,
        val_names=np.array(data.val.names), val_probs=probs["val"].astype(np.float16),
        test_names=np.array(data.test.names), test_probs=probs["test"].astype(np.float16),
    )  # fmt: skip
    tracker.log_artifact(preds_path, "predictions")
    tracker.log_figure(curves_figure(fitted.logger.history, title=_title(config)), "dsc_curve.png")
    # One entry per epoch; null where an epoch was not validated (train.val_every > 1).
    history = {k: [v if math.isfinite(v) else None for v in values] for k, values in fitted.logger.history.items()}
    tracker.log_dict(history, "history.json")
    if config["tracking"].get("enabled") and config["tracking"].get("log_model", True):
        from ggo.serving.model import export_generator, log_segmenter, serving_config

        model_path = export_generator(fitted.gan.generator, config["gen"], data.resolution, workdir / "generator.keras")
        log_segmenter(tracker, [model_path], serving_config(config), workdir / "model")


def _title(config: Mapping[str, Any]) -> str:
    return (
        f"{config['gen']['name']} + {config['disc']['name']} / {_loss_label(config['loss'], adversarial=config['disc']['name'] != 'none')} / "
        f"{config['preprocess']['resolution']} px / fold {config['data']['fold']}"
    )
