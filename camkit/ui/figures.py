"""Figures from a bench run: FROC curves of every pairing and CAM overlay grids (the paper's Fig. 4)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from camkit.storage.atomic import atomic_write

GT_COLOUR = "#2ca02c"
BOX_COLOUR = "#ff7f0e"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    out = atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=fig.dpi, bbox_inches="tight"))
    _pyplot().close(fig)
    return out


def froc_figure(results: dict[str, Any], path: str | Path, max_fppi: float = 8.0) -> Path:
    """One panel per train-cam, one FROC curve per test-cam (log FPPI axis, as usual for FROC)."""
    plt = _pyplot()
    detection = results.get("detection", {})
    train_cams = list(detection)
    fig, axes = plt.subplots(1, max(1, len(train_cams)), figsize=(4.2 * max(1, len(train_cams)), 3.6),
                             dpi=110, sharey=True, squeeze=False)
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
        ax.set_title(f"trained with {train_cam}")
        ax.set_xlabel("false positives per image")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("true positive rate (lesions)")
    axes[0][-1].legend(title="test-cam", fontsize=8)
    fig.suptitle(f"FROC, IoU > {results.get('config', {}).get('iou_threshold', 0.3)}", fontsize=10)
    return _save(fig, path)


def overlay_grid(images: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                 maps: dict[str, Sequence[np.ndarray]], boxes: dict[str, Sequence[np.ndarray]],
                 path: str | Path, titles: Sequence[str] | None = None) -> Path:
    """Rows: images; columns: the image with its ground truth, then each method's map and boxes."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    methods = list(maps)
    n_rows, n_cols = len(images), 1 + len(methods)
    h, w = np.asarray(images[0]).shape[-2:]
    cell = 2.2
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols * w / h + 0.4, cell * n_rows + 0.3),
                             dpi=110, squeeze=False)

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
