"""``camkit distill --log``: the detector trainings' curves and their rows' scores in TensorBoard or MLflow
(camkit.training.tracking), one tracker run per training, named by its role."""
from __future__ import annotations

from pathlib import Path
from typing import Any


class DistillTrackers:
    """``--log``: one tracker run per detector training (named by its role), its curves while it trains, its
    row's scores (and the gain, for the detector) when the distill is scored."""

    def __init__(self, out: Path, backends: tuple[str, ...], uri: str | None, teacher: dict[str, Any]) -> None:
        self.out, self.backends, self.uri, self.teacher = out, tuple(backends), uri, teacher
        self.open: dict[str, list[Any]] = {}

    def sink(self, role: str, sink: Any) -> Any:
        """``sink`` teed to new trackers of ``role`` (``sink`` itself when nothing is logged)."""
        if not self.backends:
            return sink
        from camkit import __version__
        from camkit.training.progress import Tee
        from camkit.training.tracking import open_tracker

        tags = {"role": role, "teacher": f"{self.teacher['model']}/{self.teacher['train_cam']}",
                "teacher_config_hash": self.teacher["config_hash"], "camkit": __version__}
        self.open[role] = [open_tracker(b, self.out, role, tags, self.uri, None, experiment="camkit-distill")
                           for b in self.backends]
        return Tee(sink, *self.open[role])

    def close(self, document: dict[str, Any]) -> None:
        """Each role's row (a self-training round's earlier detectors: their own training only) and the gain."""
        detectors = [r for r in self.open if r.startswith("detector")]
        # the scored rows: the last self-training round's detector is the "detector" row
        scored = {**({detectors[-1]: "detector"} if detectors else {}), "oracle": "oracle"}
        for role, trackers in self.open.items():
            row = document["rows"].get(scored.get(role), {})
            metrics = {k: v.get("value", v.get("tpr")) for k, v in row.items() if isinstance(v, dict) and "ci" in v}
            if scored.get(role) == "detector" and document.get("gain"):
                metrics["gain"] = document["gain"]["value"]
            for t in trackers:
                t.log_results(metrics)
                t.close()
        self.open = {}

    def end(self, exc: BaseException) -> None:
        """A failed or interrupted distill's tracker runs end FAILED / KILLED, not RUNNING."""
        import contextlib

        from camkit.training.tracking import end_status

        for trackers in self.open.values():
            for t in trackers:
                with contextlib.suppress(Exception):
                    t.close(end_status(exc))
        self.open = {}
