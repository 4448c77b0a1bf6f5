"""A logged model's files and the loaded model: what the CV ensemble, predict and the bench need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ggo.tracking.store import fluent_scope


def download_model(uri: str, run_id: str, dst: str | Path) -> Path:
    """The files of run ``run_id``'s logged ``model`` (MLmodel, artifacts/generator_*.keras, ...)."""
    # MLflow 3 resolves runs:/<id>/model through the process-wide tracking URI (its logged-model
    # lookup ignores tracking_uri=), hence the scope.
    with fluent_scope(uri) as mlflow:
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/model", dst_path=str(dst), tracking_uri=uri)
        )


def load_pyfunc(uri: str, model_uri: str) -> Any:
    """``mlflow.pyfunc.load_model(model_uri)`` with ``models:/`` and ``runs:/`` resolved against ``uri``.

    Raises a RuntimeError that names the model, the store and what to do when it cannot be loaded.
    """
    from mlflow.exceptions import MlflowException

    try:
        with fluent_scope(uri) as mlflow:
            return mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as exc:
        hint = (
            "promote a run first (python -m ggo.promote)"
            if model_uri.startswith("models:/")
            else "check the run id and that the run logged a model"
        )
        message = getattr(exc, "message", None) or str(exc)
        raise RuntimeError(
            f"cannot load model {model_uri} from the MLflow store at {uri}: {message.splitlines()[0] if message else exc}. "
            f"{hint.capitalize()}, or pass --model runs:/<run id>/model (or --tracking-uri for another store)."
        ) from None
