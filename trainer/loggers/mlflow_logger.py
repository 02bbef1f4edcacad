"""MLflow runs: the logged scalars as metrics, the run configuration as parameters."""

from __future__ import annotations

import time
import warnings
from typing import Any

from trainer.callbacks.logger import experiment_name
from trainer.loggers.base import ScalarSink, flatten
from trainer.loggers.trackers import import_extra

_BATCH = 100  # MLflow's limit of parameters per log_batch call
_MAX_PARAM = 6000  # characters of a parameter value MLflow keeps


class MLflowLogger(ScalarSink):
    """Log to an MLflow tracking store; named ``"mlflow"`` in ``Trainer(loggers=[...])``.

    Metrics are ``<mode>/<name>`` (``train/loss``, ``val/accuracy``) at the logger's step; the
    run configuration, flattened to dotted keys, becomes the run's parameters. The run's id is
    kept in checkpoints, so a resumed run continues the same MLflow run. Uses
    ``MlflowClient`` only, never MLflow's process-wide active run, so runs in one process do not
    interfere; the run is marked finished when the Trainer's run ends. Needs
    ``pip install 'trainer[mlflow]'``.

    Args:
        tracking_uri: the store, e.g. ``"sqlite:///mlflow.db"``, ``"file:./mlruns"`` or a server
            URL; ``None`` uses MLflow's default (``MLFLOW_TRACKING_URI`` when set).
        experiment: the experiment's name, created when missing (default: MLflow's default).
        run_name: the run's name (default: the work_dir's last folder and the timestamp).
        tags: tags to set on the run.

    Example:
        >>> MLflowLogger(tracking_uri="sqlite:///mlflow.db", experiment="digits")
        MLflowLogger(priority='VERY_LOW')
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None,
                 run_name: str | None = None, tags: dict[str, str] | None = None,
                 priority: int | str | None = None) -> None:
        super().__init__(priority)
        for name, value in (("tracking_uri", tracking_uri), ("experiment", experiment),
                            ("run_name", run_name)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"MLflowLogger {name} must be a string, got {value!r}")
        if tags is not None and not isinstance(tags, dict):
            raise TypeError(f"MLflowLogger tags must be a dict of strings, got {tags!r}")
        import_extra("mlflow", "mlflow", "MLflowLogger")  # fail when built, not mid-run
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.tags = dict(tags or {})
        self.run_id: str | None = None
        self._client: Any = None

    def open(self, trainer: Any, config: dict[str, Any]) -> None:
        mlflow = import_extra("mlflow", "mlflow", "MLflowLogger")
        from mlflow.entities import Param

        self._client = client = mlflow.tracking.MlflowClient(self.tracking_uri)
        if self.run_id is not None and self._exists(self.run_id):
            client.update_run(self.run_id, status="RUNNING")
            return
        if self.run_id is not None:
            warnings.warn(f"MLflow run {self.run_id} of the resumed checkpoint is not in "
                          f"{client.tracking_uri}: starting a new run", stacklevel=2)
        experiment_id = "0"
        if self.experiment is not None:
            found = client.get_experiment_by_name(self.experiment)
            experiment_id = (found.experiment_id if found is not None
                             else client.create_experiment(self.experiment))
        run = client.create_run(experiment_id, run_name=self.run_name or experiment_name(trainer),
                                tags=self.tags)
        self.run_id = run.info.run_id
        params = [Param(k[:250], str(v)[:_MAX_PARAM]) for k, v in flatten(config).items()]
        for start in range(0, len(params), _BATCH):
            client.log_batch(self.run_id, params=params[start:start + _BATCH])

    def _exists(self, run_id: str) -> bool:
        try:
            self._client.get_run(run_id)
        except Exception:  # MlflowException: RESOURCE_DOES_NOT_EXIST, or another store's id
            return False
        return True

    def write(self, mode: str, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[
            Metric(f"{mode}/{k}", float(v), stamp, int(step)) for k, v in scalars.items()])

    def close(self) -> None:
        self._client.set_terminated(self.run_id)
        self._client, self.run_id = None, None  # a later fit is a new run unless it resumes

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")
