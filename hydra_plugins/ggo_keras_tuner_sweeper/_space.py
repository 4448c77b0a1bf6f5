"""The search space: ``hydra.sweeper.params`` and command-line sweeps as Keras Tuner hyperparameters.

Also the way back: a trial's values as Hydra overrides (:func:`format_value`, :func:`round_value`).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Iterable, Mapping, Optional

import keras_tuner as kt
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger(__name__)

SPEC_FIELDS = {"type", "values", "min", "max", "step", "sampling", "default"}


class SearchSpaceError(ValueError):
    """A ``params`` entry cannot be turned into a Keras Tuner hyperparameter."""


def plain(value: Any) -> Any:
    """OmegaConf containers as plain dicts and lists (interpolations resolved)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{gen: {base_filters: [8, 16]}}`` -> ``{"gen.base_filters": [8, 16]}``; a dict with ``type``
    or ``values`` is a spec, not a level (``+hydra.sweeper.params.gen.base_filters=[8,16]`` nests)."""
    flat: dict[str, Any] = {}
    for key, spec in params.items():
        if isinstance(spec, Mapping) and not ({"type", "values"} & set(spec)):
            flat.update(flatten_params(spec, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = spec
    return flat


def add_param(hp: kt.HyperParameters, key: str, spec: Any) -> Optional[str]:
    """Register ``key`` in ``hp`` from a ``params`` entry; return an override when it is fixed.

    ``spec``: a dict with ``type`` (choice, int, float, boolean), a list (choice), or a string in
    Hydra's sweep syntax (``a,b``, ``choice(a,b)``, ``range(1,5)``, ``interval(0.1,1)``,
    ``tag(log,interval(1e-5,1e-3))``); a single value fixes ``key`` for every trial.
    """
    spec = plain(spec)
    if isinstance(spec, list):
        spec = {"type": "choice", "values": spec}
    if not isinstance(spec, dict):
        text = spec if isinstance(spec, str) else format_value(spec)
        override = OverridesParser.create().parse_override(f"{key}={text}")
        if not override.is_sweep_override():
            return override.input_line
        add_override(hp, override)
        return None
    extra = set(spec) - SPEC_FIELDS
    if extra:
        raise SearchSpaceError(f"hydra.sweeper.params.{key}: unknown field(s) {sorted(extra)}")
    try:
        _add_spec(hp, key, spec)
    except SearchSpaceError:
        raise
    except (TypeError, ValueError) as exc:  # Keras Tuner's own checks (log sampling of 0, mixed types, ...)
        raise SearchSpaceError(f"hydra.sweeper.params.{key}: {exc}") from None
    return None


def _add_spec(hp: kt.HyperParameters, key: str, spec: dict[str, Any]) -> None:
    kind = str(spec.get("type", "choice" if "values" in spec else "")).lower()
    if kind == "choice":
        values = spec.get("values")
        if not values:
            raise SearchSpaceError(f"hydra.sweeper.params.{key}: a choice needs a non-empty 'values' list")
        hp.Choice(key, values, default=spec.get("default"))
    elif kind in ("int", "float"):
        if "min" not in spec or "max" not in spec:
            raise SearchSpaceError(f"hydra.sweeper.params.{key}: type {kind} needs 'min' and 'max'")
        make = hp.Int if kind == "int" else hp.Float
        sampling = str(spec.get("sampling", "linear"))
        make(key, spec["min"], spec["max"], step=spec.get("step"), sampling=sampling, default=spec.get("default"))
    elif kind in ("boolean", "bool"):
        hp.Boolean(key, default=bool(spec.get("default", False)))
    else:
        raise SearchSpaceError(
            f"hydra.sweeper.params.{key}: type {spec.get('type')!r} is not one of choice, int, float, boolean"
        )


def add_override(hp: kt.HyperParameters, override: Override) -> None:
    """A sweep override (``key=a,b``, ``key=interval(0,1)``) as a hyperparameter."""
    key = override.get_key_element()
    if override.is_interval_sweep():
        sweep = override.value()  # Hydra's intervals are continuous: a float hyperparameter
        sampling = "log" if "log" in (sweep.tags or set()) else "linear"
        hp.Float(key, float(sweep.start), float(sweep.end), sampling=sampling)
    elif override.is_discrete_sweep():
        hp.Choice(key, list(override.sweep_string_iterator()))
    else:
        raise SearchSpaceError(f"{override.input_line}: this sweep type cannot become a Keras Tuner hyperparameter")


def build_space(
    params: Mapping[str, Any], cli: Iterable[Override], set_per_trial: Iterable[Optional[str]] = ()
) -> tuple[kt.HyperParameters, list[str]]:
    """The hyperparameters (``params`` + command-line sweeps) and the overrides every trial gets.

    A key set on the command line wins over its ``params`` entry; a plain override of a key in
    ``set_per_trial`` (Hyperband's budget keys) is dropped, since each trial sets it.
    """
    cli = list(cli)
    cli_keys = {o.get_key_element() for o in cli}
    per_trial = set(set_per_trial) - {None}
    hp = kt.HyperParameters()
    fixed: list[str] = []
    for key, spec in params.items():
        if key in cli_keys:
            log.info("%s is set on the command line: its hydra.sweeper.params entry is ignored", key)
            continue
        line = add_param(hp, key, spec)
        if line:
            fixed.append(line)
    for override in cli:
        key = override.get_key_element()
        if override.is_sweep_override():
            add_override(hp, override)
        elif key in per_trial:
            log.info("%s is set by Hyperband for each trial: ignoring %s", key, override.input_line)
        else:
            fixed.append(override.input_line)
    if not hp.space:
        log.warning("The search space is empty: every trial runs the same configuration")
    return hp, fixed


# --- a trial's values as overrides ------------------------------------------------------------

_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@+\-]+$")
# Strings Hydra would read as a number, a bool or null: these must be quoted to stay strings.
_NOT_A_STRING = re.compile(r"[+\-]?(\d[\d_]*|\d*\.\d+([eE][+\-]?\d+)?|\d+[eE][+\-]?\d+|inf|nan|true|false|null)", re.I)


def format_value(value: Any) -> str:
    """A Python value as the right-hand side of a Hydra override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if _PLAIN_VALUE.match(text) and not _NOT_A_STRING.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def round_value(value: Any) -> Any:
    """Floats to 4 significant digits: readable overrides and run names, same value for oracle and job."""
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        return float(f"{value:.4g}")
    return value
