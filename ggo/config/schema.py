"""The config schema: one dataclass per config group, the single source of every default (the
evaluation threshold, the patient split's seed and fractions, ...). Registered in Hydra's
ConfigStore as ``schema`` on import (when Hydra is installed; a served model reads the defaults
without it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, List, Optional

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


class GenName(StrEnum):
    unet = "unet"
    attention_unet = "attention_unet"


class AuxHead(StrEnum):
    """An auxiliary generator output (``ggo.heads.AUX_HEADS``)."""

    lungs = "lungs"  # Left Lung + Right Lung
    heart = "heart"  # Cardiomediastinum
    airways = "airways"
    consolidation = "consolidation"
    devices = "devices"  # Monitoring Probes, Tubings, Endotracheal Tube, Central Venous Line, Nasogastric Tube


class DiscName(StrEnum):
    patchgan = "patchgan"
    none = "none"


class Norm(StrEnum):
    batch = "batch"
    instance = "instance"
    none = "none"


class Upsampling(StrEnum):
    transpose = "transpose"
    bilinear = "bilinear"


class AdversarialMode(StrEnum):
    bce = "bce"
    lsgan = "lsgan"


class Fit(StrEnum):
    pad = "pad"
    stretch = "stretch"


class DataName(StrEnum):
    generalblockchain = "generalblockchain"
    synthetic = "synthetic"
    folder = "folder"  # the user's own images/ + masks/ under data.root (ggo.data.folder)


class Precision(StrEnum):
    auto = "auto"
    float32 = "float32"
    mixed_float16 = "mixed_float16"
    mixed_bfloat16 = "mixed_bfloat16"


class LungGate(StrEnum):
    """How a lung head gates the GGO probability (``ggo.evaluation.inference.gated_probs``)."""

    soft = "soft"  # P(GGO) x P(lung): the lungs as a prior (depends on the lung head's calibration)
    hard = "hard"  # P(GGO) where P(lung) > 0.5, else 0: GGO only inside the predicted lungs


class AdversarialUpdate(StrEnum):
    """How a batch updates D and G (``ggo.training.gan_base.ADVERSARIAL_UPDATES``)."""

    sequential = "sequential"  # D, then G through the updated D (PyTorch pix2pix)
    same_pass = "same_pass"  # both from one D pass (TensorFlow pix2pix tutorial): one D pass fewer


class Schedule(StrEnum):
    constant = "constant"
    cosine = "cosine"
    step = "step"


class Backend(StrEnum):
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
    workers: int = 0  # processes decoding and preprocessing films while a cache is built; 0: one per core


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
    # XLA for the train step: true, false, or auto (timed both ways on this machine once: ggo.training.xla_choice)
    jit_compile: Any = False
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
    # The film-level answer (ggo.evaluation.film): P(GGO) = sigmoid(film_a + film_b * log(share marked)),
    # a film under film_cut is called GGO-free (empty mask). CV sweeps fit and choose them out of fold;
    # film_b = 0: no film-level model (every film with a marked pixel is GGO).
    film_a: float = 0.0
    film_b: float = 0.0
    film_cut: float = 0.0


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


class ConfigError(ValueError):
    """A config value is out of range or unknown; the message names the key and what to do."""


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
