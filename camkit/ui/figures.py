"""Figures from a bench run: FROC curves of every pairing and CAM overlay grids (the paper's Fig. 4).

Drawn from what the run directory stores (``results.json`` and ``overlays/*.npz``), never from a model:
:func:`draw_run_figures` (re)draws whatever figure is missing or older than its data, so a figure that failed
to write is drawn again on the next run. matplotlib's object API only: no pyplot state, no backend switch.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from camkit.storage.atomic import atomic_write

GT_COLOUR = "#2ca02c"
BOX_COLOUR = "#ff7f0e"


def _figure(**kwargs: Any):
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=fig.dpi, bbox_inches="tight"))


def check_figure_path(path: str | Path, option: str = "--out") -> None:
    """Raise OptionError unless ``path``'s extension is a format matplotlib writes (png, pdf, svg, jpg ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    from camkit.errors import OptionError

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise OptionError(f"{option} {str(path)!r}: {'.' + suffix if suffix else 'no extension'} is not a figure "
                          f"format; use one of {', '.join('.' + f for f in sorted(formats))}")
    parent = Path(path).parent
    if parent.exists() and not parent.is_dir():
        raise OptionError(f"{option} {str(path)!r}: {str(parent)!r} is a file, not a folder")


def draw_run_figures(run_dir: str | Path, force: bool = False) -> list[Path]:
    """Draw ``figures/froc.png`` (runs whose test set has lesion boxes) and ``figures/overlay-<train-cam>.png`` of
    a bench run directory.

    A figure is drawn when it is missing, older than the data it shows, or ``force``. Returns the paths drawn.
    """
    import json

    run = Path(run_dir)
    drawn: list[Path] = []
    results_path = run / "results.json"
    if not results_path.is_file():
        return drawn
    froc_path = run / "figures" / "froc.png"
    results = json.loads(results_path.read_text())
    boxless = bool(results.get("dataset", {}).get("not_scored"))  # a test set without boxes has no FROC
    if not boxless and (force or _stale(froc_path, results_path)):
        drawn.append(froc_figure(results, froc_path))
    for data in sorted((run / "overlays").glob("*.npz")):
        path = run / "figures" / f"overlay-{data.stem}.png"
        if force or _stale(path, data):
            drawn.append(overlay_from_file(data, path))
    return drawn


def _stale(figure: Path, source: Path) -> bool:
    return not figure.is_file() or figure.stat().st_mtime < source.stat().st_mtime


def read_overlays(data: str | Path) -> dict[str, np.ndarray]:
    """The arrays of one ``overlays/<row>.npz`` (never unpickled); a damaged file (truncated, not an npz, keys
    missing) is one :class:`camkit.errors.CamkitError` line naming it and the way out."""
    import zipfile

    from camkit.errors import CamkitError

    try:
        with np.load(data, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        missing = [k for k in ("image", "image_id", "cams", "gt") if k not in arrays]
        if missing:
            raise KeyError(f"no {', '.join(missing)}")
        return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise CamkitError(f"{data} is damaged ({type(exc).__name__}: {exc}); delete it and run camkit report with "
                          "--redraw (it is drawn again from the row's checkpoint), or re-run the bench") from None


def overlay_from_file(data: str | Path, path: str | Path) -> Path:
    """The overlay grid of one ``overlays/<train-cam>.npz`` (written by the bench)."""
    arrays = read_overlays(data)
    cams = [str(c) for c in arrays["cams"]]
    # the figure shows the first four mass images (the file may also hold more, and normal ones, for the report)
    labels = arrays["label"] if "label" in arrays else np.ones(arrays["image"].shape[0], np.int8)
    keep = np.flatnonzero(labels == 1)[:4]
    arrays = _subset(arrays, keep, cams)
    n = len(keep)

    def per_image(boxes: np.ndarray) -> list[np.ndarray]:
        return [boxes[boxes[:, 0] == i, 1:] for i in range(n)]

    return overlay_grid(list(arrays["image"].astype(np.float32)), per_image(arrays["gt"]),
                        {c: list(arrays[f"map_{c}"].astype(np.float32)) for c in cams},
                        {c: per_image(arrays[f"boxes_{c}"]) for c in cams}, path,
                        titles=[f"{i} p={p:.2f}" for i, p in zip(arrays["image_id"], arrays["prob"])])


def froc_figure(results: dict[str, Any], path: str | Path, max_fppi: float = 8.0) -> Path:
    """One panel per row (train-cam, or model), one FROC curve per test-cam (log FPPI axis, as usual for FROC)."""
    from camkit.bench.config import Row
    from camkit.bench.leaderboard import row_meta

    detection = results.get("detection", {})
    train_cams = list(detection)
    fig = _figure(figsize=(4.2 * max(1, len(train_cams)), 3.6), dpi=110)
    axes = fig.subplots(1, max(1, len(train_cams)), sharey=True, squeeze=False)
    for ax, train_cam in zip(axes[0], train_cams):
        for test_cam, entry in detection[train_cam].items():
            curve = entry.get("froc") or {}
            fppi, tpr = np.asarray(curve.get("fppi", [])), np.asarray(curve.get("tpr", []))
            if fppi.size == 0:
                continue
            keep = fppi <= max_fppi
            ax.step(np.r_[1e-3, fppi[keep]], np.r_[0, tpr[keep]], where="post", label=test_cam)
        ax.set_xscale("log")
        ax.set_xlim(1 / 16, max_fppi)
        ax.set_ylim(0, 1.02)
        ax.axvline(1.0, color="grey", lw=0.6, ls=":")
        ax.set_title(Row(train_cam, **row_meta(results, train_cam)).title)
        ax.set_xlabel("false positives per image")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("true positive rate (lesions)")
    axes[0][-1].legend(title="test-cam", fontsize=8)
    fig.suptitle(f"FROC, IoU > {results.get('config', {}).get('iou_threshold', 0.3)}", fontsize=10)
    return _save(fig, path)


def _subset(arrays: dict[str, np.ndarray], keep: np.ndarray, cams: list[str]) -> dict[str, np.ndarray]:
    """The overlay arrays of the images ``keep`` (box arrays re-indexed: their first column is the image)."""
    out = dict(arrays)
    for key in ("image", "prob", "image_id", "label", *[f"map_{c}" for c in cams]):
        if key in arrays:
            out[key] = arrays[key][keep]
    index = {int(old): new for new, old in enumerate(keep)}
    for key in ("gt", *[f"boxes_{c}" for c in cams]):
        b = arrays[key]
        b = b[np.isin(b[:, 0].astype(int), keep)].copy()
        b[:, 0] = [index[int(i)] for i in b[:, 0]]
        out[key] = b
    return out


def overlay_grid(images: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                 maps: dict[str, Sequence[np.ndarray]], boxes: dict[str, Sequence[np.ndarray]],
                 path: str | Path, titles: Sequence[str] | None = None) -> Path:
    """Rows: images; columns: the image with its ground truth, then each method's map and boxes."""
    from matplotlib.patches import Rectangle

    methods = list(maps)
    n_rows, n_cols = len(images), 1 + len(methods)
    h, w = np.asarray(images[0]).shape[-2:]
    cell = 2.2
    fig = _figure(figsize=(cell * n_cols * w / h + 0.4, cell * n_rows + 0.3), dpi=110)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)

    def draw(ax, bxs, colour):
        for x1, y1, x2, y2 in np.asarray(bxs, dtype=float).reshape(-1, 4):
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=1.2))

    for i, img in enumerate(images):
        img = np.asarray(img, dtype=float).squeeze()
        axes[i][0].imshow(img, cmap="gray")
        draw(axes[i][0], gt_boxes[i], GT_COLOUR)
        axes[i][0].set_ylabel(titles[i] if titles else "", fontsize=7)
        for j, m in enumerate(methods, start=1):
            axes[i][j].imshow(img, cmap="gray")
            axes[i][j].imshow(np.asarray(maps[m][i], dtype=float), cmap="jet", alpha=0.45, vmin=0, vmax=1)
            draw(axes[i][j], gt_boxes[i], GT_COLOUR)
            draw(axes[i][j], boxes[m][i], BOX_COLOUR)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_title("image + ground truth", fontsize=8)
    for j, m in enumerate(methods, start=1):
        axes[0][j].set_title(m, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
