"""Config schemas and composition.

The dataclasses below are registered in Hydra's ConfigStore as ``schema``, the first entry of
``conf/config.yaml``'s defaults list. Every group file merges into them, so a wrong type
(``gen.depth=abc``), an unknown key (``gen.depht=4``) or an unknown choice (``gen.norm=layer``)
fails at composition, before any data is read or any model is built, with Hydra's message naming
the key. :func:`validate` adds the range checks that types cannot express (a negative learning
rate, a resolution that is not a multiple of ``2**depth``).

Only this module, ``ggo.train`` and the Hydra plugins import hydra or omegaconf, and this module
only inside its functions: the dataclasses are the single source of every default (the evaluation
threshold, the patient split's seed and fractions, ...) and library code reads them from here
(:func:`defaults`) even where Hydra is not installed (a served model). Library code gets plain
dicts from :func:`to_dict`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


class GenName(str, Enum):
    unet = "unet"
    attention_unet = "attention_unet"


class AuxHead(str, Enum):
    """An auxiliary generator output (``ggo.heads.AUX_HEADS``)."""

    lungs = "lungs"  # Left Lung + Right Lung
    heart = "heart"  # Cardiomediastinum
    airways = "airways"
    consolidation = "consolidation"
    devices = "devices"  # Monitoring Probes, Tubings, Endotracheal Tube, Central Venous Line, Nasogastric Tube


class DiscName(str, Enum):
    patchgan = "patchgan"
    none = "none"


class Norm(str, Enum):
    batch = "batch"
    instance = "instance"
    none = "none"


class Upsampling(str, Enum):
    transpose = "transpose"
    bilinear = "bilinear"


class AdversarialMode(str, Enum):
    bce = "bce"
    lsgan = "lsgan"


class Fit(str, Enum):
    pad = "pad"
    stretch = "stretch"


class DataName(str, Enum):
    generalblockchain = "generalblockchain"
    synthetic = "synthetic"
    folder = "folder"  # the user's own images/ + masks/ under data.root (ggo.data.folder)


class Precision(str, Enum):
    auto = "auto"
    float32 = "float32"
    mixed_float16 = "mixed_float16"
    mixed_bfloat16 = "mixed_bfloat16"


class LungGate(str, Enum):
    """How a lung head gates the GGO probability (``ggo.evaluation.inference.gated_probs``)."""

    soft = "soft"  # P(GGO) x P(lung): the lungs as a prior (depends on the lung head's calibration)
    hard = "hard"  # P(GGO) where P(lung) > 0.5, else 0: GGO only inside the predicted lungs


class AdversarialUpdate(str, Enum):
    """How a batch updates D and G (``ggo.training.gan_base.ADVERSARIAL_UPDATES``)."""

    sequential = "sequential"  # D, then G through the updated D (PyTorch pix2pix)
    same_pass = "same_pass"  # both from one D pass (TensorFlow pix2pix tutorial): one D pass fewer


class Schedule(str, Enum):
    constant = "constant"
    cosine = "cosine"
    step = "step"


class Backend(str, Enum):
    """Keras backend of a run: ``ggo.train`` sets KERAS_BACKEND from ``train.backend``."""

    tensorflow = "tensorflow"
    jax = "jax"


@dataclass
class GenConfig:
    name: GenName = GenName.unet
    depth: int = 4
    base_filters: int = 16
    max_filters: int = 256
    norm: Norm = Norm.batch
    dropout: float = 0.0
    upsampling: Upsampling = Upsampling.transpose
    lung_head: bool = False  # also predict the lungs; GGO is gated by them at inference (= lungs in aux_heads)
    # auxiliary outputs after GGO, in this order: lungs, heart, airways, consolidation, devices
    aux_heads: List[AuxHead] = field(default_factory=list)


@dataclass
class DiscConfig:
    name: DiscName = DiscName.patchgan
    n_layers: int = 3
    base_filters: int = 32
    max_filters: int = 256
    norm: Norm = Norm.batch


@dataclass
class AuxLossConfig:
    """BCE weight of each auxiliary head but the lungs (``loss.lung``); used when in ``gen.aux_heads``."""

    heart: float = 100.0
    airways: float = 100.0
    consolidation: float = 100.0
    devices: float = 100.0


@dataclass
class LossConfig:
    adversarial: float = 1.0
    adversarial_mode: AdversarialMode = AdversarialMode.bce
    l1: float = 100.0
    bce: float = 0.0
    dice: float = 0.0
    label_smoothing: float = 0.0
    lung: float = 100.0  # weight of the lung head's BCE (gen.lung_head, or lungs in gen.aux_heads)
    aux: AuxLossConfig = field(default_factory=AuxLossConfig)  # the other heads' BCE weights



@dataclass
class PreprocessConfig:
    resolution: int = 256
    fit: Fit = Fit.pad
    clahe: bool = False
    clahe_clip: float = 2.0


@dataclass
class DataConfig:
    name: DataName = DataName.generalblockchain
    root: Optional[str] = None
    cache_dir: Optional[str] = None
    seed: int = 0
    test_fraction: float = 0.2
    folds: int = 5
    fold: int = 0
    train_ggo_free: bool = False
    n_images: int = 24
    n_patients: int = 16
    image_size: int = 96
    n_ggo_free: int = 0


@dataclass
class AugmentConfig:
    flip: bool = True
    rotation_deg: float = 10.0
    scale: float = 0.1
    shift: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 8
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta_1: float = 0.5
    lr_schedule: Schedule = Schedule.constant
    warmup_epochs: int = 0
    d_steps: int = 1
    ema: float = 0.0  # decay of the generator weights' moving average per step (0: off; 0.99 ~ 100 steps)
    patience: int = 20
    precision: Precision = Precision.auto
    jit_compile: bool = False
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    resume_from: Optional[str] = None  # a checkpoint.weights.h5 to start from (a Hyperband trial continuing its parent)
    initial_epoch: int = 0  # epochs already done by that checkpoint; training runs initial_epoch+1 .. epochs
    backend: Backend = Backend.tensorflow  # Keras backend (tensorflow | jax); JAX trains without TensorFlow
    # -- speed (issue 14) --
    adversarial_update: AdversarialUpdate = AdversarialUpdate.sequential  # sequential | same_pass
    val_every: int = 1  # validate every k epochs (and always the last one)
    # CPU threads of the job's TensorFlow (intra- and inter-op pools; ggo.runtime.threads); 0: one per core
    threads: int = 0


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: Optional[str] = None
    experiment: str = "ggo"
    image_every: int = 5
    n_images: int = 4
    log_model: bool = True


@dataclass
class EvalConfig:
    tta_flip: bool = False
    min_component_px: int = 0
    threshold: float = 0.5  # probability above which a pixel is GGO; CV sweeps choose it on val
    lung_gate: LungGate = LungGate.soft  # with a lung head: soft = P(GGO) x P(lung), hard = GGO inside P(lung) > 0.5


@dataclass
class Config:
    gen: GenConfig = field(default_factory=GenConfig)
    disc: DiscConfig = field(default_factory=DiscConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    objective: str = "val/dice"
    trial_id: Optional[str] = None  # set by the Keras Tuner sweeper; tagged ggo.trial_id on the run


def register() -> None:
    """Register the schema with Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="schema", node=Config)


try:
    register()
except ImportError:  # no Hydra (a served model's environment): the defaults below still read fine
    pass


def defaults(section: str) -> dict[str, Any]:
    """The schema's default values of one config section (``"eval"``, ``"data"``, ...), enums as
    their strings: the one place a library function looks a default up."""
    sections = {f.name: f for f in dataclasses.fields(Config) if f.default_factory is not dataclasses.MISSING}
    if section not in sections:
        raise KeyError(f"config section {section!r}: not in the schema; sections: {', '.join(sections)}")
    values = dataclasses.asdict(sections[section].default_factory())
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in values.items()}


class ConfigError(ValueError):
    """A config value is out of range; the message names the key and what to do."""


def validate(cfg: dict[str, Any]) -> None:
    """Check the ranges that types cannot express. Raises :class:`ConfigError` naming the key."""
    problems: list[str] = []

    def need(ok: bool, key: str, value: Any, what: str) -> None:
        if not ok:
            problems.append(f"{key}={value!r}: {what}")

    g, d, t, p, data = cfg["gen"], cfg["disc"], cfg["train"], cfg["preprocess"], cfg["data"]
    need(3 <= g["depth"] <= 7, "gen.depth", g["depth"], "must be between 3 and 7")
    need(g["base_filters"] >= 1, "gen.base_filters", g["base_filters"], "must be >= 1")
    need(0.0 <= g["dropout"] < 1.0, "gen.dropout", g["dropout"], "must be in [0, 1)")
    res = p["resolution"]
    need(res >= 16, "preprocess.resolution", res, "must be >= 16")
    if 3 <= g["depth"] <= 7 and res % (2 ** g["depth"]):
        problems.append(
            f"preprocess.resolution={res}: must be a multiple of 2^gen.depth = {2 ** g['depth']} "
            f"(gen.depth={g['depth']}); use a lower gen.depth or another resolution"
        )
    if d["name"] != "none":
        need(1 <= d["n_layers"] <= 5, "disc.n_layers", d["n_layers"], "must be between 1 and 5")
        need(d["base_filters"] >= 1, "disc.base_filters", d["base_filters"], "must be >= 1")
    for key in ("epochs", "batch_size", "d_steps"):
        need(t[key] >= 1, f"train.{key}", t[key], "must be >= 1")
    for key in ("g_lr", "d_lr"):
        need(t[key] > 0 and math.isfinite(t[key]), f"train.{key}", t[key], "must be a positive number")
    need(0.0 <= t["beta_1"] < 1.0, "train.beta_1", t["beta_1"], "must be in [0, 1)")
    need(0.0 <= t.get("ema", 0.0) < 1.0, "train.ema", t.get("ema"),
         "must be in [0, 1): 0 turns the weight average off, 0.99 averages over about 100 generator steps")  # fmt: skip
    need(t["patience"] >= 0, "train.patience", t["patience"], "must be >= 0 (0 turns early stopping off)")
    need(t["warmup_epochs"] >= 0, "train.warmup_epochs", t["warmup_epochs"], "must be >= 0")
    need(t.get("val_every", 1) >= 1, "train.val_every", t.get("val_every"), "must be >= 1 (1 validates every epoch)")
    if t.get("adversarial_update") == "same_pass" and d["name"] != "none":
        need(t["d_steps"] == 1, "train.d_steps", t["d_steps"],
             "must be 1 with train.adversarial_update=same_pass (one discriminator pass serves both updates); "
             "use train.adversarial_update=sequential for several discriminator steps")  # fmt: skip
    _check_threads(t, need)
    for key, value in cfg["loss"].items():
        if key not in ("adversarial_mode", "aux"):
            need(value >= 0, f"loss.{key}", value, "must be >= 0")
    _check_heads(cfg["gen"], cfg["loss"], need)
    need(cfg["loss"]["label_smoothing"] < 1.0, "loss.label_smoothing", cfg["loss"]["label_smoothing"], "must be < 1")
    seg = sum(cfg["loss"][k] for k in ("l1", "bce", "dice"))
    need(seg > 0, "loss", "l1+bce+dice=0", "at least one of loss.l1, loss.bce, loss.dice must be > 0")
    need(0.0 < cfg["eval"]["threshold"] < 1.0, "eval.threshold", cfg["eval"]["threshold"], "must be in (0, 1)")
    need(cfg["eval"]["min_component_px"] >= 0, "eval.min_component_px", cfg["eval"]["min_component_px"], "must be >= 0")
    need(0.0 < data["test_fraction"] < 1.0, "data.test_fraction", data["test_fraction"], "must be in (0, 1)")
    need(data["folds"] >= 2, "data.folds", data["folds"], "must be >= 2")
    need(0 <= data["fold"] < data["folds"], "data.fold", data["fold"], f"must be in 0..{data['folds'] - 1}")
    if cfg["tracking"]["enabled"]:
        need(cfg["tracking"]["image_every"] >= 1, "tracking.image_every", cfg["tracking"]["image_every"], "must be >= 1")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _check_heads(gen: dict[str, Any], loss: dict[str, Any], need: Any) -> None:
    """``gen.aux_heads``: each head once, and a positive loss weight for every head asked for."""
    from ggo.heads import LUNGS, resolve_heads

    aux = [str(getattr(h, "value", h)) for h in gen.get("aux_heads") or ()]
    repeated = sorted({h for h in aux if aux.count(h) > 1})
    need(not repeated, "gen.aux_heads", aux, f"lists {repeated} more than once: name each head once")
    heads = resolve_heads(bool(gen.get("lung_head")), dict.fromkeys(aux))
    if LUNGS in heads:
        why = "gen.lung_head=true" if gen.get("lung_head") else "lungs in gen.aux_heads"
        need(loss["lung"] > 0, "loss.lung", loss["lung"], f"must be > 0 with {why} (the lung head learns from it)")
    for head, weight in (loss.get("aux") or {}).items():
        need(weight >= 0, f"loss.aux.{head}", weight, "must be >= 0")
    for head in heads:
        if head != LUNGS:
            weight = (loss.get("aux") or {}).get(head, 0.0)
            need(weight > 0, f"loss.aux.{head}", weight, f"must be > 0 with {head} in gen.aux_heads (the head learns from it)")


def _check_threads(t: dict[str, Any], need: Any) -> None:
    """``train.threads``: a count >= 0, and TensorFlow's setting (JAX's XLA pool has none)."""
    threads = t.get("threads", 0)
    need(threads >= 0, "train.threads", threads, "must be >= 0 (0 keeps TensorFlow's default, one thread per core)")
    need(
        threads == 0 or t.get("backend", "tensorflow") == "tensorflow", "train.threads", threads,
        "sets TensorFlow's thread pools and has no effect with train.backend=jax: set train.threads=0 "
        "(or limit the process's cores, e.g. taskset -c 0 python -m ggo.train ...)",
    )  # fmt: skip


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python (enums as strings), without the ``hydra`` node."""
    from omegaconf import OmegaConf

    out = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True, throw_on_missing=True)
    assert isinstance(out, dict)
    out.pop("hydra", None)
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"gen": {"depth": 4}}`` -> ``{"gen.depth": 4}`` (for MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def compose(overrides: list[str] | None = None, config_name: str = "config", *, with_hydra: bool = False) -> DictConfig:
    """Compose the project's config outside ``@hydra.main`` (tests, notebooks, the data CLI)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []), return_hydra_config=with_hydra)
