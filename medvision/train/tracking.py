"""Optional MLflow tracking (the ``[track]`` extra): parameters, per-epoch metrics and run-directory artifacts.

By default runs go to a local file store (``<repo or cwd>/mlruns``); pass ``tracking_uri`` for a server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medvision.core.errors import MissingExtraError
from medvision.train.run_dir import RunDirectory


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


class MLflowTracker:
    """Log one medvision run to MLflow. Use as a context manager around :func:`medvision.train.loop.fit`."""

    def __init__(self, experiment: str = "medvision", run_name: str | None = None,
                 tracking_uri: str | os.PathLike[str] | None = None):
        try:
            import mlflow
        except ImportError as exc:
            raise MissingExtraError("MLflow tracking needs the [track] extra: pip install 'medvision[track]'") from exc
        self.mlflow = mlflow
        uri = str(tracking_uri) if tracking_uri else (Path.cwd() / "mlruns").resolve().as_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(experiment)
        self.run_name = run_name

    def __enter__(self) -> MLflowTracker:
        self.mlflow.start_run(run_name=self.run_name)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.mlflow.end_run(status="FAILED" if exc_type else "FINISHED")

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.mlflow.log_params({k: str(v)[:500] for k, v in _flatten(params).items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                                 if isinstance(v, (int, float))}, step=step)

    def log_run_dir(self, run_dir: str | os.PathLike[str]) -> None:
        for name in RunDirectory.TRACKED:
            path = Path(run_dir) / name
            if path.is_file():
                self.mlflow.log_artifact(str(path))
