"""``camkit explain --detector``: a trained detector's best boxes on one image, with their scores, and a figure.

The checkpoint is a detector's training by ``camkit distill`` (its ``best.pt`` / ``last.pt``), read weights-only
with :func:`camkit.storage.checkpoint.read_checkpoint` (never unpickled). The detector is rebuilt as
``create_detector(name, **model_config)`` from the options the training loop stored beside the weights
(``input_size`` among them), wrapped in :class:`camkit.distill.adapter.DetectorModel` as it trained, and filled
strictly. The image is read and preprocessed as ``camkit explain`` does for a CAM model (laterality, breast crop,
resize to the input size), and the boxes go back to the original image's pixels through its ``BoxTransform``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camkit.errors import CheckpointError, OptionError

#: the table's columns: boxes in the original image's pixels, best first
COLUMNS = ("rank", "score", "x1", "y1", "x2", "y2")


@dataclass(frozen=True)
class DetectorExplainOptions:
    """Which detector, with which options over the checkpoint's, and which of its boxes are kept.

    ``detector`` is a registered detector's name (the one the checkpoint trained); ``detector_options`` go to
    ``create_detector`` over the stored ones (e.g. ``score_threshold``, ``detections``); the ``max_boxes``
    best boxes scoring at least ``min_score`` are kept; ``laterality`` ``"L"``/``"R"`` mirrors right views like
    training did (None: detect the breast side).
    """

    detector: str
    detector_options: dict[str, Any] = field(default_factory=dict)
    max_boxes: int = 5
    min_score: float = 0.0
    laterality: str | None = None

    def check(self) -> DetectorExplainOptions:
        """These options, or an OptionError naming the bad one (an unknown detector with its close match)."""
        check_detector_name(self.detector)
        if isinstance(self.max_boxes, bool) or not isinstance(self.max_boxes, int) or self.max_boxes < 1:
            raise OptionError(f"--max-boxes must be a whole number >= 1 (the best boxes drawn), got {self.max_boxes!r}")
        score = self.min_score
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= float(score) <= 1.0:
            raise OptionError(f"--min-score must be in [0, 1] (a detection score), got {score!r}")
        if self.laterality not in (None, "L", "R"):
            raise OptionError(f"--laterality must be L or R (or left out), got {self.laterality!r}")
        return self


def check_detector_name(name: str) -> None:
    """Raise OptionError unless ``name`` is a registered detector, with its closest registered name."""
    import difflib

    from camkit.registry.api import list_detectors

    known = list_detectors()
    if name in known:
        return
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise OptionError(f"--detector {name!r} is not a registered detector.{hint} Registered: "
                      f"{', '.join(known) or 'none'} (camkit list detectors)")


def adapter_class_name() -> str:
    """What a detector training's fingerprint records as its model: the adapter's ``module.Class``."""
    from camkit.distill.adapter import DetectorModel

    return f"{DetectorModel.__module__}.{DetectorModel.__qualname__}"


def stored_detector(stored: dict[str, Any]) -> str | None:
    """The detector name a checkpoint dict was trained as (its ``model_config["detector"]``), None when it is not
    a camkit checkpoint of a detector's training (a CAM model's, or a plain state dict)."""
    from camkit.storage.checkpoint import is_camkit_checkpoint

    if not is_camkit_checkpoint(stored):
        return None
    held = (stored.get("model_config") or {}).get("detector")
    trained = (stored.get("fingerprint") or {}).get("model")
    if not isinstance(held, str) or (isinstance(trained, str) and trained != adapter_class_name()):
        return None
    return held


def detector_config(stored: dict[str, Any], name: str, checkpoint: str | Path) -> dict[str, Any]:
    """The ``create_detector`` options a detector checkpoint stored (``input_size`` as a tuple; its ``weights``
    file left out: the checkpoint holds the trained weights), or an OptionError saying what the file holds."""
    from camkit.storage.checkpoint import is_camkit_checkpoint

    held = stored_detector(stored)
    if held is None:
        if not is_camkit_checkpoint(stored):
            raise OptionError(f"{checkpoint} is not a camkit checkpoint (a plain state dict?): --detector reads the "
                              "best.pt / last.pt of a camkit distill training")
        trained = (stored.get("fingerprint") or {}).get("model") or "camkit model"
        raise OptionError(f"{checkpoint} holds a {trained}, not a detector's training: draw its CAMs without "
                          "--detector (and --model as it trained)")
    if held != name:
        raise OptionError(f"{checkpoint} holds a {held!r} detector, not {name!r}: pass --detector {held}")
    config = {k: v for k, v in dict(stored.get("model_config") or {}).items() if k not in ("detector", "weights")}
    if isinstance(config.get("input_size"), (list, tuple)):
        config["input_size"] = tuple(int(v) for v in config["input_size"])
    return config


def load_detector(checkpoint: str | Path, name: str, options: dict[str, Any] | None = None) -> Any:
    """The :class:`camkit.distill.adapter.DetectorModel` a detector checkpoint holds, in eval mode: read once,
    weights-only; built from its stored options with ``options`` over them; filled strictly."""
    from camkit.distill.adapter import DetectorModel
    from camkit.registry.api import create_detector
    from camkit.storage.checkpoint import apply_checkpoint, read_checkpoint

    stored = read_checkpoint(checkpoint)
    config = {**detector_config(stored, name, checkpoint), **(options or {})}
    model = DetectorModel(name, create_detector(name, **config))
    try:
        apply_checkpoint(stored, model, checkpoint)
    except CheckpointError as exc:  # torch's own text lists every key, on lines of their own
        if "does not fit" not in str(exc):
            raise CheckpointError(str(exc).splitlines()[0]) from None
        why = (f"with --detector-opt {', '.join(f'{k}={v}' for k, v in options.items())}: leave out those that "
               "change the network" if options else "from the options it stored: was the detector's plugin changed "
               "since it trained?")
        raise CheckpointError(f"{checkpoint}: its weights do not fit the {name!r} detector built {why}") from None
    return model.eval()


def pick_boxes(boxes: np.ndarray, scores: np.ndarray, transform: Any, original_size: tuple[int, int],
               opts: DetectorExplainOptions) -> dict[str, list[Any]]:
    """The ``max_boxes`` best of a detector's boxes (model frame, best first) scoring at least ``min_score``,
    in the model frame and in the original image's pixels (clipped to the image; a box wholly outside it, in
    the padding of the breast crop, or without area, is left out)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = scores >= float(opts.min_score)
    boxes, scores = boxes[keep], scores[keep]
    h, w = original_size
    original = transform.to_original(boxes) if len(boxes) else np.zeros((0, 4))
    original = np.clip(original, 0.0, [w, h, w, h])
    has_area = (original[:, 2] > original[:, 0]) & (original[:, 3] > original[:, 1])
    take = np.flatnonzero(has_area)[: opts.max_boxes]
    return {"model_frame": np.round(boxes[take], 2).tolist(), "original_frame": np.round(original[take], 2).tolist(),
            "scores": [round(float(s), 4) for s in scores[take]]}


def explain_detector(image: str | Path, checkpoint: str | Path, options: DetectorExplainOptions) -> dict[str, Any]:
    """A detector checkpoint's best boxes on one image file (DICOM or PNG).

    Returns the image, checkpoint, detector, its input size, ``probability`` (the best detection's score, the
    adapter's image score), ``boxes`` as ``{detector: {"model_frame", "original_frame", "scores"}}`` (the shape
    ``camkit explain`` gives each CAM's boxes), and under ``"arrays"`` the original image (for a figure).
    """
    import torch

    from camkit.data.imaging import preprocess, read_image

    opts = options.check()
    model = load_detector(checkpoint, opts.detector, opts.detector_options)
    original = read_image(image)
    x, transform = preprocess(original, tuple(model.input_size), laterality=opts.laterality)
    with torch.no_grad():
        out = model(x.reshape(1, 1, *x.shape[-2:]))
    boxes, scores = out["detections"][0]
    picked = pick_boxes(boxes.detach().cpu().numpy(), scores.detach().float().cpu().numpy(), transform,
                        tuple(original.shape[-2:]), opts)
    return {"image": str(image), "checkpoint": str(checkpoint), "detector": opts.detector,
            "input_size": list(model.input_size), "probability": float(model.predict(out)[0]),
            "max_boxes": opts.max_boxes, "min_score": float(opts.min_score), "boxes": {opts.detector: picked},
            "arrays": {"image": original}}


def detector_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per kept box of :func:`explain_detector`'s result: rank, score, and the box in the original
    image's pixels (rounded to whole pixels)."""
    found = result["boxes"][result["detector"]]
    return [{"rank": i, "score": round(s, 4), **dict(zip(COLUMNS[2:], (round(v) for v in box)))}
            for i, (box, s) in enumerate(zip(found["original_frame"], found["scores"]), start=1)]


def detector_figure(image: np.ndarray, boxes: list[list[float]], scores: list[float], path: str | Path,
                    title: str = "") -> Path:
    """The image (original pixels) with each box drawn and labelled with its rank and score (the best one
    thicker, its label on top); written atomically in the format ``path``'s extension names."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from camkit.storage.atomic import atomic_write
    from camkit.ui.figures import BOX_COLOUR

    img = np.asarray(image, dtype=float).squeeze()
    h, w = img.shape[-2:]
    fig = Figure(figsize=(5.0 * w / h + 0.4, 5.3), dpi=110)
    ax = fig.subplots()
    ax.imshow(img, cmap="gray")
    ranked = list(enumerate(zip(boxes, scores), start=1))
    for i, ((x1, y1, x2, y2), s) in reversed(ranked):  # the best drawn last: its label stays on top
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=BOX_COLOUR, lw=2.0 if i == 1 else 1.0))
        ax.text(x1, y1, f"{i}: {s:.2f}", color="black", fontsize=7, va="bottom",
                bbox={"facecolor": BOX_COLOUR, "edgecolor": "none", "pad": 1.0, "alpha": 0.85})
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=fig.dpi, bbox_inches="tight"))
