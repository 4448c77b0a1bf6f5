"""The config as a run gets it: composed by Hydra, typed once (:func:`typed`), plain only at the
edges (:func:`plain` for MLflow params and ``config.yaml``)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar, Union

from ggo.config.schema import CONF_DIR, Config, ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

T = TypeVar("T")


def typed(cfg: Config | DictConfig | Mapping[str, Any], *, lenient: bool = False) -> Config:
    """The run's typed config: the schema's dataclasses (enums as :class:`enum.StrEnum`, which
    compare equal to their strings), from Hydra's composed config or a plain mapping (a test, a
    notebook, a logged ``config.yaml``). Keys a mapping leaves out take the schema's defaults; an
    unknown key raises :class:`~ggo.config.ConfigError` naming it, unless ``lenient`` (reading the
    config a run of another ggo version logged)."""
    if isinstance(cfg, Config):
        return cfg
    if not isinstance(cfg, Mapping):  # an omegaconf DictConfig
        cfg = to_dict(cfg)
    return section(Config, {k: v for k, v in cfg.items() if k != "hydra"}, lenient=lenient)


def section(cls: type[T], values: T | Mapping[str, Any] | None, *, lenient: bool = False, where: str = "") -> T:
    """One schema dataclass (``DataConfig``, ``EvalConfig``, ...) from a mapping of its keys, each
    coerced to the field's type; missing keys take the schema's defaults. ``values`` already of
    the class is returned as it is."""
    if isinstance(values, cls):
        return values
    if values is None:
        return cls()
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown and not lenient:
        raise ConfigError(f"{where or cls.__name__}: unknown keys {unknown}; the schema has {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _coerce(hints[name], values[name], f"{where}.{name}" if where else name, lenient)
        for name in fields if name in values
    }  # fmt: skip
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str, lenient: bool) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):  # Optional[X]
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return section(hint, value, lenient=lenient, where=key)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(str(getattr(value, "value", value)))
        except ValueError:
            raise ConfigError(f"{key}={value!r}: must be one of {[m.value for m in hint]}") from None
    if origin is list:
        return [_coerce(args[0], v, key, lenient) for v in value]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def plain(obj: Any) -> Any:
    """A typed config (or one of its sections) as plain Python, enums as their strings: for MLflow
    params, ``config.yaml`` and a shipped model's ``preprocess.json``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return str(obj.value)
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python (enums as strings), without the ``hydra`` node."""
    from omegaconf import OmegaConf

    out = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True, throw_on_missing=True)
    assert isinstance(out, dict)
    out.pop("hydra", None)
    return out


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"gen": {"depth": 4}}`` -> ``{"gen.depth": 4}`` (for MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
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
