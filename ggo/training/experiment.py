"""One run, end to end: data -> models -> fit -> evaluate -> track. Plain arguments only.

:func:`run_job` is what the Hydra task calls (and what tests and notebooks can call directly):
it opens the run's tracker, validates the config, trains, evaluates the best checkpoint on val
and test, logs everything, and turns any failure into a FAILED (or, on interrupt, KILLED) run with
the error recorded, so a sweep never loses what it already recorded.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import keras
import numpy as np

from ggo.config import Config, flatten, plain, typed, validate
from ggo.evaluation.evaluate import EvalSettings, evaluate_splits, per_image_scores
from ggo.evaluation.ggo_free import area_metrics, log_ggo_free, score_ggo_free
from ggo.evaluation.scores import log_per_image
from ggo.heads import LUNGS, resolve_heads
from ggo.tracking import Tracker, open_tracker, record_failure
from ggo.training.callbacks import BestGenerator, EarlyStoppingOnValidation, EpochLogger, validation_epochs


def run_job(
    config: Config | Mapping[str, Any],
    *,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    workdir: str | Path,
    raise_errors: bool = True,
) -> float:
    """Train and track one run; return the objective (``config.objective``), NaN on failure.

    ``config``: the typed config (:func:`ggo.config.typed`; a plain mapping is typed here). With
    ``raise_errors=False`` (inside a sweep) an exception is recorded on the run and NaN is
    returned, so the other jobs go on; a KeyboardInterrupt always marks the run KILLED and
    propagates.
    """
    config = typed(config)
    run_tags = {
        "gen": _gen_label(config),
        "disc": str(config.disc.name),
        "loss": _loss_label(config),
        "resolution": config.preprocess.resolution,
        "fold": config.data.fold,
        "data": str(config.data.name),
        **({"ggo.trial_id": config.trial_id} if config.trial_id is not None else {}),
        **(tags or {}),
    }
    tracker = open_tracker(config.tracking, run_name=run_name, tags=run_tags, parent_run_id=parent_run_id)
    if tracker.run_id:
        print(f"[ggo] run {run_name!r}: MLflow run {tracker.run_id}", flush=True)
    try:
        config, resolved_tags = _resolved(config)
        tracker.set_tags(resolved_tags)
        tracker.log_params(flatten(plain(config)))
        validate(config)
        metrics = run_experiment(Run.of(config, tracker, Path(workdir)))
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
    return float(metrics.get(config.objective, float("nan")))


@dataclass(frozen=True)
class Run:
    """One run: its typed config and what is derived from it, built once and passed down."""

    config: Config
    tracker: Tracker
    workdir: Path
    settings: EvalSettings  # how probabilities become masks (config.eval)
    heads: tuple[str, ...]  # the generator's auxiliary heads in channel order

    @classmethod
    def of(cls, config: Config | Mapping[str, Any], tracker: Tracker, workdir: Path | None = None) -> Run:
        config = typed(config)
        return cls(config, tracker, workdir or Path("."), EvalSettings.from_config(config.eval), heads_of(config))


def heads_of(config: Config) -> tuple[str, ...]:
    """The run's auxiliary heads in channel order (``gen.lung_head`` and ``gen.aux_heads``)."""
    return resolve_heads(config.gen.lung_head, [str(h) for h in config.gen.aux_heads])


def _gen_label(config: Config) -> str:
    """``unet``, ``unet+lungs``, ``unet+lungs+heart``: the generator and its heads (the name alone
    when the heads are invalid: :func:`ggo.config.validate` then fails the run, naming them)."""
    try:
        return "+".join([str(config.gen.name), *heads_of(config)])
    except ValueError:
        return str(config.gen.name)


def head_weights(config: Config) -> tuple[float, dict[str, float]]:
    """``(lung_weight, aux_weights)`` for ``GAN.compile``: ``loss.lung`` when the lungs are a
    head (else 0), and ``loss.aux.<head>`` for each other head."""
    heads, loss = heads_of(config), config.loss
    lung = float(loss.lung) if LUNGS in heads else 0.0
    return lung, {h: float(getattr(loss.aux, h)) for h in heads if h != LUNGS}


def _resolved(config: Config) -> tuple[Config, dict[str, str]]:
    """``config`` with what this machine decides filled in, and tags that say why: ``train.precision=auto``
    becomes the policy it stands for here and ``train.jit_compile=auto`` this machine's timed choice
    (:mod:`ggo.training.xla_choice`), so the run's params, ``config.yaml`` and tags all say what ran."""
    from ggo.config.schema import Precision
    from ggo.training.precision import resolve_precision
    from ggo.training.xla_choice import AUTO, resolve_jit_compile

    train = dataclasses.replace(config.train, precision=Precision(resolve_precision(str(config.train.precision))))
    config = dataclasses.replace(config, train=train)
    if train.jit_compile != AUTO:
        return config, {}
    validate(config)  # before the timing builds the model: a bad config fails here, naming the key
    jit, why = resolve_jit_compile(config, config.data.cache_dir)
    return dataclasses.replace(config, train=dataclasses.replace(train, jit_compile=jit)), {"ggo.jit_compile_auto": why}


def _loss_label(config: Config) -> str:
    """``l1+dice+adv_bce``: the active terms (no adversarial term without a discriminator)."""
    loss = config.loss
    parts = [name for name in ("l1", "bce", "dice") if getattr(loss, name) > 0]
    adv = config.disc.name != "none" and loss.adversarial > 0
    return "+".join(parts) + (f"+adv_{loss.adversarial_mode}" if adv else "")


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


def run_experiment(run: Run) -> dict[str, float]:
    """Train the configured GAN on fold ``data.fold`` and evaluate its best epoch. Returns final metrics.

    Stages: :func:`prepare` (backend, precision, seed, data), :func:`build_gan`, :func:`fit_gan`
    (with a Hyperband resume), :func:`evaluate_best`, :func:`log_outputs` (artifacts, model).
    """
    started = time.perf_counter()
    run.workdir.mkdir(parents=True, exist_ok=True)
    run.tracker.log_dict(plain(run.config), "config.yaml")
    data = prepare(run)
    gan = build_gan(run, data)
    fitted = fit_gan(run, gan, data)
    final, probs = evaluate_best(run, fitted, data)
    log_outputs(run, fitted, data, probs)
    total = time.perf_counter() - started
    run.tracker.log_metrics({"train/job_seconds": total}, step=fitted.logger.epochs_run + 1)
    summary = ", ".join(f"{k} {final[k]:.3f}" for k in ("val/dice", "test/dice", "test/precision", "test/recall") if k in final)
    print(f"[ggo] best epoch {fitted.best.best_epoch}: {summary} ({total:.0f}s)", flush=True)
    return final


def prepare(run: Run) -> RunData:
    """Check the Keras backend, set precision and seed, and load the fold's splits from the cache."""
    from ggo.data import prepare_from_config
    from ggo.runtime.threads import limit_threads
    from ggo.training import for_backend, set_precision, set_random_seed

    config, tracker, t = run.config, run.tracker, run.config.train
    trainer = for_backend(str(t.backend))  # raises unless Keras runs that backend
    limit_threads(t.threads, backend=trainer.backend)  # before TensorFlow starts its thread pools
    tracker.set_tags({"ggo.backend": trainer.backend})
    policy = set_precision(str(t.precision))
    set_random_seed(t.seed)
    res, fold = config.preprocess.resolution, config.data.fold
    cache = prepare_from_config(config.data, config.preprocess, progress=True)
    splits = cache.split(fold, train_ggo_free=config.data.train_ggo_free, aux_heads=run.heads)
    free = cache.ggo_free_split(fold)
    data = RunData(splits["train"], splits["val"], splits["test"], res, trainer, free["val"], free["test"])
    if run.heads:
        _log_head_counts(run, data)
    tracker.set_tags({"ggo.precision": policy, "ggo.cache": str(cache.path)})
    tracker.log_params({"data.n_train": len(data.train), "data.n_val": len(data.val), "data.n_test": len(data.test)})
    negatives = f" (+ GGO-free: {len(data.val_ggo_free)} val, {len(data.test_ggo_free)} test)" if len(data.val_ggo_free) + len(data.test_ggo_free) else ""
    print(f"[ggo] data: {len(data.train)} train / {len(data.val)} val / {len(data.test)} test images{negatives} at {res} px; "
          f"precision {policy}", flush=True)  # fmt: skip
    return data


def _log_head_counts(run: Run, data: RunData) -> None:
    """Log and print how many training films teach each auxiliary head; refuse a head none teaches."""
    counts = data.train.known_counts(aux_heads=run.heads)
    run.tracker.log_params({f"data.n_train_{h}": n for h, n in counts.items()})
    print("[ggo] auxiliary heads, training films with a known target: "
          + ", ".join(f"{h} {n}/{len(data.train)}" for h, n in counts.items()), flush=True)  # fmt: skip
    untaught = [h for h, n in counts.items() if n == 0]
    if untaught:
        raise ValueError(
            f"gen.aux_heads: no training film of fold {run.config.data.fold} has a known target for {untaught} "
            f"(data={run.config.data.name}; a folder dataset annotates only lungs/): drop them from gen.aux_heads"
        )


def build_gan(run: Run, data: RunData) -> Any:
    """The generator and discriminator of the config, wrapped in the backend's GAN and compiled."""
    from ggo.models import build_models, receptive_field
    from ggo.training import make_schedule

    config, t, loss = run.config, run.config.train, run.config.loss
    generator, discriminator = build_models(plain(config.gen), plain(config.disc), data.resolution)
    if discriminator is not None:
        rf = receptive_field(discriminator)
        run.tracker.set_tags({"disc": f"patchgan{rf}", "ggo.disc_receptive_field": rf})
    steps = _steps_per_epoch(run, data)

    def optimizer(lr: float, updates_per_batch: int = 1, ema: float = 0.0) -> Any:
        # A schedule counts optimizer updates: the discriminator makes d_steps per batch.
        n = steps * updates_per_batch
        schedule = make_schedule(lr, str(t.lr_schedule), total_steps=t.epochs * n, warmup_steps=t.warmup_epochs * n)
        averaging = {"use_ema": True, "ema_momentum": ema} if ema > 0 else {}  # Keras' EMA of the weights
        return keras.optimizers.Adam(learning_rate=schedule, beta_1=t.beta_1, **averaging)

    gan = data.trainer.GAN(generator, discriminator)
    lung_weight, aux_weights = head_weights(config)
    gan.compile(
        g_optimizer=optimizer(t.g_lr, ema=t.ema),
        d_optimizer=optimizer(t.d_lr, t.d_steps) if discriminator is not None else None,
        adversarial_weight=loss.adversarial,
        l1_weight=loss.l1,
        bce_weight=loss.bce,
        dice_weight=loss.dice,
        lung_weight=lung_weight,
        aux_weights=aux_weights,
        adversarial_mode=str(loss.adversarial_mode),
        label_smoothing=loss.label_smoothing,
        d_steps=t.d_steps,
        adversarial_update=str(t.adversarial_update),
        jit_compile=t.jit_compile,
    )
    return gan


def _steps_per_epoch(run: Run, data: RunData) -> int:
    return max(1, math.ceil(len(data.train) / run.config.train.batch_size))


def fit_gan(run: Run, gan: Any, data: RunData) -> Fitted:
    """Fit (from a parent trial's checkpoint when resuming), restore the best epoch, save it."""
    from ggo.training import AugmentConfig, RaiseOnNonFinite

    t, tracking = run.config.train, run.config.tracking
    make_dataset = data.trainer.make_dataset
    # Both splits are read from the cache's files a batch at a time (Split.source), never whole into memory.
    train_ds = make_dataset(
        data.train.source(aux_heads=run.heads), batch_size=t.batch_size, shuffle=True,
        augment=AugmentConfig(**plain(t.augment)), seed=t.seed,
    )  # fmt: skip
    val_ds = make_dataset(data.val.source(aux_heads=run.heads), batch_size=t.batch_size)
    shown_images, shown_masks = data.val.first(tracking.n_images)
    logger = EpochLogger(
        run.tracker, epochs=t.epochs, steps=_steps_per_epoch(run, data), images=shown_images,
        masks=shown_masks, image_every=tracking.image_every, lung_gate=run.settings.lung_gate,
    )  # fmt: skip
    best = BestGenerator(gan.generator)
    callbacks: list[Any] = [RaiseOnNonFinite(), best, logger]
    if t.patience > 0:
        callbacks.append(EarlyStoppingOnValidation(patience_epochs=t.patience, val_every=t.val_every))
    initial_epoch = resume(run, gan, data)
    fit_started = time.perf_counter()
    gan.fit(
        train_ds, validation_data=val_ds, epochs=t.epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0,
        validation_freq=validation_epochs(initial_epoch, t.epochs, t.val_every),
    )  # fmt: skip
    seconds = time.perf_counter() - fit_started
    best.restore()
    gan.save_weights(str(run.workdir / "checkpoint.weights.h5"))  # best generator; what a continued trial resumes from
    return Fitted(gan, logger, best, seconds)


def resume(run: Run, gan: Any, data: RunData) -> int:
    """A Keras Tuner Hyperband trial continuing its parent trial: load the parent's checkpoint and
    log its score as ``val/dice_resumed`` (computed as the final ``val/dice`` is: the parent's,
    exactly). Returns the epoch to start from."""
    t = run.config.train
    if not 0 <= t.initial_epoch < t.epochs:
        raise ValueError(f"train.initial_epoch={t.initial_epoch}: must be in 0..{t.epochs - 1} (train.epochs={t.epochs})")
    if t.resume_from:
        gan.load_weights(str(t.resume_from))
        run.tracker.set_tags({"ggo.resumed_from": t.resume_from, "ggo.initial_epoch": t.initial_epoch})
        if len(data.val):
            scores, _ = evaluate_splits(gan.generator, {"val": data.val}, run.settings)
            run.tracker.log_metrics({"val/dice_resumed": scores["val/dice"]}, step=t.initial_epoch)
    return t.initial_epoch


def evaluate_best(run: Run, fitted: Fitted, data: RunData) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Score the best checkpoint on the full val and test sets (:mod:`ggo.evaluation.evaluate`); log the
    final metrics and the best epoch's overlays. Returns the metrics and the raw probability maps."""
    settings, tracker = run.settings, run.tracker
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


def log_outputs(run: Run, fitted: Fitted, data: RunData, probs: Mapping[str, np.ndarray]) -> None:
    """The probability maps, curves and history as artifacts, and the generator as a served model."""
    from ggo.evaluation.viz import curves_figure

    tracker, workdir = run.tracker, run.workdir
    preds_path = workdir / "probabilities.npz"
    np.savez_compressed(
        preds_path,
        val_names=np.array(data.val.names), val_probs=probs["val"].astype(np.float16),
        test_names=np.array(data.test.names), test_probs=probs["test"].astype(np.float16),
    )  # fmt: skip
    tracker.log_artifact(preds_path, "predictions")
    tracker.log_figure(curves_figure(fitted.logger.history, title=_title(run.config)), "dsc_curve.png")
    # One entry per epoch; null where an epoch was not validated (train.val_every > 1).
    history = {k: [v if math.isfinite(v) else None for v in values] for k, values in fitted.logger.history.items()}
    tracker.log_dict(history, "history.json")
    if run.config.tracking.enabled and run.config.tracking.log_model:
        from ggo.serving.model import export_generator, log_segmenter, serving_config

        model_path = export_generator(fitted.gan.generator, plain(run.config.gen), data.resolution, workdir / "generator.keras")
        log_segmenter(tracker, [model_path], serving_config(run.config), workdir / "model")


def _title(config: Config) -> str:
    return (
        f"{config.gen.name} + {config.disc.name} / {_loss_label(config)} / "
        f"{config.preprocess.resolution} px / fold {config.data.fold}"
    )
