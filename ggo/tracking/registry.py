"""The model registry: promotion registers a logged model, tags the version and moves the alias."""

from __future__ import annotations

from typing import Any, Mapping

from ggo.tracking.names import CHAMPION
from ggo.tracking.store import client_for, fluent_scope


def model_version_by_alias(uri: str, name: str, alias: str = CHAMPION) -> Any | None:
    """The version of registered model ``name`` that ``alias`` points at (None if either is missing)."""
    from mlflow.exceptions import MlflowException

    try:
        return client_for(uri).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_versions_of_run(uri: str, name: str, run_id: str) -> list[Any]:
    """Versions of registered model ``name`` created from run ``run_id``, newest first."""
    versions = client_for(uri).search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def register_model(uri: str, model_uri: str, name: str) -> Any:
    """Register ``model_uri`` (``models:/<model id>`` or ``runs:/<run id>/model``) as a new version of ``name``.

    Registering a logged model by its id pins exactly that model; a ``runs:/`` URI lets MLflow
    pick the run's model by name. The registered model is created if needed.
    """
    # The registry store looks a models:/<id> source up through the process-wide tracking URI
    # (MLflow's own TODO in SqlAlchemyStore.create_model_version), hence the scope.
    with fluent_scope(uri) as mlflow:
        return mlflow.register_model(model_uri, name, await_registration_for=60)


def set_model_version_tags(uri: str, name: str, version: str, tags: Mapping[str, Any]) -> None:
    """Tag one model version (values as strings)."""
    client = client_for(uri)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value)[:5000])


def set_alias(uri: str, name: str, version: str, alias: str = CHAMPION) -> None:
    """Point ``alias`` of registered model ``name`` at ``version``."""
    client_for(uri).set_registered_model_alias(name, alias, str(version))
