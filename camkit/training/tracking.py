"""Training curves and results in the trackers people already watch: TensorBoard and MLflow.

A tracker is a progress sink (:mod:`camkit.training.progress`) that also takes the loop's per-step details and,
once per epoch, the model (to draw a few CAM overlays through ``overlays(model)``). ``camkit train --log`` and
``camkit bench --log`` open one per trained model (one run per train-cam, tagged with the bench's configuration
hash) and finish it with the leaderboard's metrics. Both backends are optional extras::

    pip install "camkit[tracking]"     # tensorboard, mlflow-skinny (+ sqlalchemy, alembic for its local store)

What is logged: ``train/loss`` and every loss term ``train/<part>``, ``train/lr`` and ``train/images_per_s``
per optimizer step; ``epoch/loss`` and ``val/auc`` per epoch; ``cam/<image>`` overlays per epoch; the final
metrics as ``result/<name>``. MLflow defaults to a local SQLite store in the run directory
(``sqlite:///<dir>/mlflow.db``, pictures in ``<dir>/mlartifacts``; its file store is in maintenance mode); ``uri`` points anywhere else
(``http://host:5000``).
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from camkit.errors import OptionError

BACKENDS = ("tensorboard", "mlflow")
#: the tracking-URI schemes MLflow's own stores take ("" is a plain path; postgresql+DRIVER etc. count as theirs)
MLFLOW_SCHEMES = ("", "file", "databricks", "databricks-uc", "uc", "http", "https", "postgresql", "mysql", "sqlite",
                  "mssql")
Overlays = Callable[[Any], list[tuple[str, np.ndarray, np.ndarray]]]  # model -> [(name, image, map)]


def _missing(package: str, backend: str) -> OptionError:
    return OptionError(f"--log {backend} needs the {package} package: pip install \"camkit[tracking]\"")


def overlay_picture(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 picture: the grey image (1-99th percentile) under its map (viridis), for trackers."""
    from matplotlib import colormaps

    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99])
    grey = np.clip((img - lo) / max(float(hi - lo), 1e-6), 0, 1)[..., None].repeat(3, axis=2)
    colour = colormaps["viridis"](np.clip(np.asarray(heat, dtype=np.float32), 0, 1))[..., :3]
    return ((0.55 * grey + 0.45 * colour) * 255).astype(np.uint8)


class Tracker(ABC):
    """The common half: turns loop events into scalars, pictures and final metrics (subclasses write them)."""

    def __init__(self, overlays: Overlays | None = None):
        self.overlays = overlays

    # -- written by the backends -----------------------------------------------------------------------
    @abstractmethod
    def scalars(self, values: dict[str, float], step: int) -> None:
        """Write named values at ``step``."""

    @abstractmethod
    def picture(self, name: str, rgb: np.ndarray, step: int) -> None:
        """Write an (H, W, 3) uint8 picture at ``step``."""

    @abstractmethod
    def params(self, values: dict[str, Any]) -> None:
        """Write the run's settings once."""

    @abstractmethod
    def close(self, status: str = "FINISHED") -> None:
        """Flush and end the run: ``FINISHED``, ``FAILED`` (an error stopped it) or ``KILLED`` (interrupted)."""

    # -- progress-sink events (camkit.training.progress) ---------------------------------------------------
    def on_train_start(self, info: dict[str, Any]) -> None:
        self.params({k: v for k, v in info.items() if isinstance(v, (int, float, str, bool))})

    def on_step_detail(self, detail: dict[str, Any]) -> None:
        values = {"train/loss": detail["loss"], "train/lr": detail["lr"], "train/images_per_s": detail["images_per_s"]}
        values.update({f"train/{k}": v for k, v in detail.get("parts", {}).items() if k != "loss"})
        self.scalars(values, int(detail["step"]))

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        values = {"epoch/loss": record["loss"]}
        if record.get("val_auc") is not None:
            values["val/auc"] = record["val_auc"]
        self.scalars(values, epoch)

    def on_epoch_model(self, epoch: int, model: Any) -> None:
        if self.overlays is None:
            return
        for name, image, heat in self.overlays(model):
            self.picture(f"cam/{name}", overlay_picture(image, heat), epoch)

    def log_results(self, metrics: dict[str, float], step: int = 0) -> None:
        """The final metrics (e.g. the leaderboard's cells), as ``result/<name>``."""
        self.scalars({f"result/{k}": float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}, step)


class TensorBoardTracker(Tracker):
    """Event files under ``log_dir`` (``tensorboard --logdir`` on its parent shows every run)."""

    def __init__(self, log_dir: str | Path, tags: dict[str, Any] | None = None, overlays: Overlays | None = None):
        super().__init__(overlays)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        self.writer = SummaryWriter(str(log_dir))
        if tags:
            self.writer.add_text("tags", "\n".join(f"{k}: {v}" for k, v in sorted(tags.items())), 0)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, float(v), step)

    def picture(self, name: str, rgb: np.ndarray, step: int) -> None:
        self.writer.add_image(name, rgb, step, dataformats="HWC")

    def params(self, values: dict[str, Any]) -> None:
        self.writer.add_text("train", "\n".join(f"{k}: {v}" for k, v in sorted(values.items())), 0)

    def close(self, status: str = "FINISHED") -> None:
        if status != "FINISHED":   # event files have no run state: say so where the run's settings are
            self.writer.add_text("status", status, 0)
        self.writer.close()


class MlflowTracker(Tracker):
    """One MLflow run (``run_name``, ``tags``) in ``experiment`` at ``uri``."""

    def __init__(self, uri: str, experiment: str, run_name: str, tags: dict[str, Any] | None = None,
                 overlays: Overlays | None = None, artifacts: str | None = None):
        super().__init__(overlays)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("mlflow-skinny", "mlflow") from None
        self.client = MlflowClient(uri)
        found = self.client.get_experiment_by_name(experiment)
        # a new experiment's pictures go beside the local store, not into ./mlruns of whatever the working folder is
        experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=artifacts)
        self.run_id = self.client.create_run(experiment_id, run_name=run_name,
                                             tags={k: str(v) for k, v in (tags or {}).items()}).info.run_id

    def scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k.replace("@", "_at_"), float(v), now, int(step)) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def picture(self, name: str, rgb: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, rgb, key=name.replace("/", "_"), step=int(step))

    def params(self, values: dict[str, Any]) -> None:
        for k, v in values.items():
            self.client.log_param(self.run_id, k, v)

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def end_status(exc: BaseException | None) -> str:
    """A tracker run's final status for the exception that ended it (None: it finished)."""
    if exc is None:
        return "FINISHED"
    return "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"


def check_backend(backend: str) -> None:
    """An OptionError now (before hours of training) when ``backend`` is unknown or its package is missing."""
    import importlib.util

    if backend not in BACKENDS:
        raise OptionError(f"--log {backend!r}: choose one of {', '.join(BACKENDS)}")
    package = {"tensorboard": "tensorboard", "mlflow": "mlflow"}[backend]
    if importlib.util.find_spec(package) is None:
        raise _missing("tensorboard" if backend == "tensorboard" else "mlflow-skinny", backend)


def check_log_uri(uri: str | None) -> None:
    """An OptionError now (not after training) when ``uri`` is not a tracking URI MLflow accepts: a path, or a
    ``file:``, ``sqlite:``, ``http(s):``, ``postgresql:``, ``mysql:``, ``mssql:`` or ``databricks`` URI, or a
    scheme an installed MLflow plugin registers. Only the scheme is read: nothing is contacted."""
    import urllib.parse
    from importlib.metadata import entry_points

    if not uri:
        return
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if len(scheme) == 1 and scheme.isalpha():  # C:\runs: a Windows path, as MLflow reads it
        scheme = ""
    if uri in ("databricks", "databricks-uc", "uc") or scheme in MLFLOW_SCHEMES \
            or any(scheme.startswith(db) for db in ("postgresql", "mysql", "sqlite", "mssql")):
        return
    if scheme in {e.name for e in entry_points(group="mlflow.tracking_store")}:
        return
    raise OptionError(f"--log-uri {uri}: MLflow takes no {scheme + ':'!r} URI; give a folder, or a file:, sqlite:, "
                      "http(s):, postgresql:, mysql: or databricks URI (e.g. sqlite:///runs/mlflow.db or "
                      "http://localhost:5000)")


def open_tracker(backend: str, run_dir: str | Path, run_name: str, tags: dict[str, Any] | None = None,
                 uri: str | None = None, overlays: Overlays | None = None, experiment: str = "camkit") -> Tracker:
    """A tracker of ``backend`` for one trained model: TensorBoard event files in ``run_dir/tensorboard/<run>``,
    or an MLflow run at ``uri`` (default ``sqlite:///<run_dir>/mlflow.db``)."""
    if backend not in BACKENDS:
        raise OptionError(f"--log {backend!r}: choose one of {', '.join(BACKENDS)}")
    run_dir = Path(run_dir)
    if backend == "tensorboard":
        return TensorBoardTracker(run_dir / "tensorboard" / run_name, tags, overlays)
    check_log_uri(uri)  # MLflow's own error is a traceback about its model registry
    run_dir.mkdir(parents=True, exist_ok=True)
    artifacts = None if uri else (run_dir.resolve() / "mlartifacts").as_uri()
    return MlflowTracker(uri or f"sqlite:///{run_dir.resolve() / 'mlflow.db'}", experiment, run_name, tags, overlays,
                         artifacts)
