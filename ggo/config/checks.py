"""Range checks that types cannot express (a negative learning rate, a resolution that is not a
multiple of ``2**gen.depth``), on the typed config. Raises :class:`ConfigError` naming the key."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from ggo.config.schema import Config, ConfigError, GenConfig, LossConfig, TrainConfig
from ggo.config.typed import typed

Need = Callable[[bool, str, Any, str], None]


def validate(cfg: Config | Mapping[str, Any]) -> None:
    """Check the ranges that types cannot express. Raises :class:`ConfigError` naming the key.

    ``cfg``: the typed config (a plain mapping is typed first, :func:`ggo.config.typed`)."""
    cfg = typed(cfg)
    problems: list[str] = []

    def need(ok: bool, key: str, value: Any, what: str) -> None:
        if not ok:
            problems.append(f"{key}={value!r}: {what}")

    g, d, p, data, ev = cfg.gen, cfg.disc, cfg.preprocess, cfg.data, cfg.eval
    need(3 <= g.depth <= 7, "gen.depth", g.depth, "must be between 3 and 7")
    need(g.base_filters >= 1, "gen.base_filters", g.base_filters, "must be >= 1")
    need(0.0 <= g.dropout < 1.0, "gen.dropout", g.dropout, "must be in [0, 1)")
    res = p.resolution
    need(res >= 16, "preprocess.resolution", res, "must be >= 16")
    if 3 <= g.depth <= 7 and res % (2**g.depth):
        problems.append(
            f"preprocess.resolution={res}: must be a multiple of 2^gen.depth = {2**g.depth} "
            f"(gen.depth={g.depth}); use a lower gen.depth or another resolution"
        )
    if d.name != "none":
        need(1 <= d.n_layers <= 5, "disc.n_layers", d.n_layers, "must be between 1 and 5")
        need(d.base_filters >= 1, "disc.base_filters", d.base_filters, "must be >= 1")
    _check_train(cfg.train, d.name != "none", need)
    _check_loss(cfg.loss, need)
    _check_heads(g, cfg.loss, need)
    need(0.0 < ev.threshold < 1.0, "eval.threshold", ev.threshold, "must be in (0, 1)")
    need(ev.min_component_px >= 0, "eval.min_component_px", ev.min_component_px, "must be >= 0")
    need(0.0 <= ev.film_cut < 1.0, "eval.film_cut", ev.film_cut, "must be in [0, 1): 0 never calls a film GGO-free")
    need(0.0 < data.test_fraction < 1.0, "data.test_fraction", data.test_fraction, "must be in (0, 1)")
    need(data.folds >= 2, "data.folds", data.folds, "must be >= 2")
    need(0 <= data.fold < data.folds, "data.fold", data.fold, f"must be in 0..{data.folds - 1}")
    need(data.workers >= 0, "data.workers", data.workers, "must be >= 0 (0: one process per core builds the cache)")
    if cfg.tracking.enabled:
        need(cfg.tracking.image_every >= 1, "tracking.image_every", cfg.tracking.image_every, "must be >= 1")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _check_train(t: TrainConfig, adversarial: bool, need: Need) -> None:
    for key in ("epochs", "batch_size", "d_steps"):
        need(getattr(t, key) >= 1, f"train.{key}", getattr(t, key), "must be >= 1")
    for key in ("g_lr", "d_lr"):
        value = getattr(t, key)
        need(value > 0 and math.isfinite(value), f"train.{key}", value, "must be a positive number")
    need(0.0 <= t.beta_1 < 1.0, "train.beta_1", t.beta_1, "must be in [0, 1)")
    need(0.0 <= t.ema < 1.0, "train.ema", t.ema,
         "must be in [0, 1): 0 turns the weight average off, 0.99 averages over about 100 generator steps")  # fmt: skip
    need(t.patience >= 0, "train.patience", t.patience, "must be >= 0 (0 turns early stopping off)")
    need(t.warmup_epochs >= 0, "train.warmup_epochs", t.warmup_epochs, "must be >= 0")
    need(t.val_every >= 1, "train.val_every", t.val_every, "must be >= 1 (1 validates every epoch)")
    need(isinstance(t.jit_compile, bool) or t.jit_compile == "auto", "train.jit_compile", t.jit_compile,
         "must be true, false or auto (auto: XLA when it times faster on this machine)")  # fmt: skip
    if t.adversarial_update == "same_pass" and adversarial:
        need(t.d_steps == 1, "train.d_steps", t.d_steps,
             "must be 1 with train.adversarial_update=same_pass (one discriminator pass serves both updates); "
             "use train.adversarial_update=sequential for several discriminator steps")  # fmt: skip
    need(t.threads >= 0, "train.threads", t.threads, "must be >= 0 (0 keeps TensorFlow's default, one thread per core)")
    need(
        t.threads == 0 or t.backend == "tensorflow", "train.threads", t.threads,
        "sets TensorFlow's thread pools and has no effect with train.backend=jax: set train.threads=0 "
        "(or limit the process's cores, e.g. taskset -c 0 python -m ggo.train ...)",
    )  # fmt: skip


def _check_loss(loss: LossConfig, need: Need) -> None:
    for f in dataclasses.fields(loss):
        if f.name not in ("adversarial_mode", "aux"):
            need(getattr(loss, f.name) >= 0, f"loss.{f.name}", getattr(loss, f.name), "must be >= 0")
    need(loss.label_smoothing < 1.0, "loss.label_smoothing", loss.label_smoothing, "must be < 1")
    need(loss.l1 + loss.bce + loss.dice > 0, "loss", "l1+bce+dice=0", "at least one of loss.l1, loss.bce, loss.dice must be > 0")


def _check_heads(gen: GenConfig, loss: LossConfig, need: Need) -> None:
    """``gen.aux_heads``: each head once, and a positive loss weight for every head asked for."""
    from ggo.heads import LUNGS, resolve_heads

    aux = [str(h) for h in gen.aux_heads]
    repeated = sorted({h for h in aux if aux.count(h) > 1})
    need(not repeated, "gen.aux_heads", aux, f"lists {repeated} more than once: name each head once")
    heads = resolve_heads(gen.lung_head, dict.fromkeys(aux))
    if LUNGS in heads:
        why = "gen.lung_head=true" if gen.lung_head else "lungs in gen.aux_heads"
        need(loss.lung > 0, "loss.lung", loss.lung, f"must be > 0 with {why} (the lung head learns from it)")
    weights = dataclasses.asdict(loss.aux)
    for head, weight in weights.items():
        need(weight >= 0, f"loss.aux.{head}", weight, "must be >= 0")
    for head in heads:
        if head != LUNGS:
            weight = weights.get(head, 0.0)
            need(weight > 0, f"loss.aux.{head}", weight, f"must be > 0 with {head} in gen.aux_heads (the head learns from it)")
