"""The pictures of ``camkit report``, shared by its bench and distill sections: the FROC chart's SVG geometry, and
the gallery's pictures (a grey image, a map over it, boxes drawn in colours, written as PNG files or data URIs).

Nothing here reads a run; the callers pass the numbers and arrays in.
"""
from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Okabe & Ito's colour-blind-safe palette (black last, for the ninth curve on); dash patterns tell curves
# apart beyond the colours.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
DASHES = ("", "6 3", "2 2", "8 3 2 3")
IOU = 0.3  # the bench's match rule for the gallery's outcomes (camkit.metrics.detection)
THUMB, FULL = 160, 640  # the gallery's picture sizes (longer side)


def slug(text: Any) -> str:
    """``text`` as a safe file-name part (letters, digits, ``_.-``; never empty)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "x"


def hex_colour(rgb: Sequence[int]) -> str:
    """``(r, g, b)`` as ``#rrggbb``."""
    return "#" + "".join(f"{int(v):02X}" for v in rgb)


# -- the FROC chart -----------------------------------------------------------------------------------
def froc_svg(curves: Sequence[Mapping[str, Any]], iou: Any = IOU, max_fppi: float = 8.0) -> dict[str, Any]:
    """The geometry of one FROC chart (log FPPI 1/16 .. ``max_fppi``, lesion TPR 0 .. 1) for the page's SVG.

    ``curves``: one mapping per curve with ``label``, ``froc`` (``{"fppi": [...], "tpr": [...]}``, as the bench
    and the distill store it) and optionally ``colour``; any other key is passed through. A curve without
    operating points is left out. Returns the plot's frame, ticks and each curve's ``id``, ``colour``, ``dash``
    and ``points`` (an SVG polyline, thinned: collinear steps are one segment)."""
    width, height, left, bottom, top, right = 640, 360, 56, 40, 14, 16
    lo, hi = np.log10(1 / 16), np.log10(max_fppi)

    def x(f: float) -> float:
        return left + (np.log10(min(max(f, 1 / 16), max_fppi)) - lo) / (hi - lo) * (width - left - right)

    def y(t: float) -> float:
        return top + (1 - min(max(t, 0.0), 1.0)) * (height - top - bottom)

    out = []
    for curve in curves:
        steps = _steps(curve.get("froc"), max_fppi)
        if not steps:
            continue
        pts, prev = [], 0.0
        for f, t in steps:  # a step curve: TPR holds until the next operating point
            pts += [(x(f), y(prev)), (x(f), y(t))]
            prev = t
        pts.append((x(max_fppi), y(prev)))
        k = len(out)
        extra = {key: v for key, v in curve.items() if key not in ("froc", "colour")}
        out.append({**extra, "id": f"froc-{k}", "colour": curve.get("colour") or PALETTE[k % len(PALETTE)],
                    "dash": DASHES[(k // len(PALETTE)) % len(DASHES)],
                    "points": " ".join(f"{a:.1f},{b:.1f}" for a, b in _thin(pts))})
    ticks_x = [(x(f), label) for f, label in ((1 / 16, "1/16"), (1 / 8, "1/8"), (0.25, "1/4"), (0.5, "1/2"),
                                              (1, "1"), (2, "2"), (4, "4"), (8, "8")) if f <= max_fppi]
    ticks_y = [(y(t), f"{t:.1f}") for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    return {"width": width, "height": height, "left": left, "bottom": height - bottom, "top": top,
            "right": width - right, "curves": out, "ticks_x": ticks_x, "ticks_y": ticks_y, "iou": iou}


def _steps(froc: Any, max_fppi: float) -> list[tuple[float, float]]:
    """The finite ``(fppi, tpr)`` operating points up to ``max_fppi`` of a stored FROC entry ([] if it has none or
    is not one)."""
    if not isinstance(froc, Mapping):
        return []
    try:
        fppi = np.asarray(froc.get("fppi", []), dtype=float).ravel()
        tpr = np.asarray(froc.get("tpr", []), dtype=float).ravel()
    except (TypeError, ValueError):
        return []
    n = min(len(fppi), len(tpr))
    out = []
    for f, t in zip(fppi[:n], tpr[:n]):
        if f > max_fppi:
            break
        if np.isfinite(f) and np.isfinite(t):
            out.append((float(f), float(t)))
    return out


def _thin(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The polyline without repeated points and with the middle points of straight vertical or horizontal runs
    left out (at the precision the page writes them): the same picture from far fewer points."""
    out: list[tuple[float, float]] = []
    for p in ((round(a, 1), round(b, 1)) for a, b in points):
        if out and p == out[-1]:
            continue
        if len(out) >= 2 and (out[-2][0] == out[-1][0] == p[0] or out[-2][1] == out[-1][1] == p[1]):
            out[-1] = p
        else:
            out.append(p)
    return out


# -- gallery pictures ---------------------------------------------------------------------------------
def png_bytes(rgb: np.ndarray, optimize: bool = True) -> bytes:
    """An (H, W, 3) uint8 picture as PNG (``optimize``: about 15% smaller, ten times slower to write)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=optimize)
    return buf.getvalue()


def grey_picture(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float: the image's 1st-99th percentile range as grey."""
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99]) if img.size else (0.0, 1.0)
    return np.repeat(np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)[..., None], 3, axis=2)


def blend_map(grey: np.ndarray, heat: np.ndarray | None) -> np.ndarray:
    """The grey picture with the map over it (viridis, colour-blind-safe), as uint8 RGB."""
    from matplotlib import colormaps

    rgb = grey
    if heat is not None:
        rgb = 0.55 * grey + 0.45 * colormaps["viridis"](np.clip(np.asarray(heat, dtype=np.float32), 0, 1))[..., :3]
    return (rgb * 255).astype(np.uint8)


def draw_boxes(rgb: np.ndarray, layers: Sequence[tuple[Sequence[int], Any]], max_side: int,
               enlarge: bool = False) -> np.ndarray:
    """``rgb`` resized so its longer side is ``max_side`` (never enlarged unless ``enlarge``) with each layer's
    boxes (``(colour, (N, 4) x1 y1 x2 y2 in rgb's pixels)``) drawn on it, in order (the last on top)."""
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    scale = max_side / max(h, w, 1)
    scale = scale if enlarge else min(1.0, scale)
    pic = Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))))
    draw = ImageDraw.Draw(pic)
    for colour, bxs in layers:
        for x1, y1, x2, y2 in np.asarray(bxs, dtype=float).reshape(-1, 4) * scale:
            draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=tuple(colour),
                           width=2 if max_side > 200 else 1)
    return np.asarray(pic)


def picture_src(out: Path, rel: str, rgb: np.ndarray, single_file: bool, optimize: bool = True) -> str:
    """Where the page finds the picture ``rgb``: a ``data:`` URI (``single_file``), else ``rel`` (written under
    ``out``); ``optimize``: see :func:`png_bytes`."""
    data = png_bytes(rgb, optimize)
    if single_file:
        return "data:image/png;base64," + base64.b64encode(data).decode()
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return rel


def box_outcome(gt: Any, boxes: Any, iou: float = IOU) -> list[str]:
    """The gallery's tags of some boxes on one image: hit (a lesion matched at IoU > ``iou``), miss (a lesion no
    box matched), false positive (a box matching no lesion)."""
    from camkit.metrics.detection import iou_matrix

    gt, boxes = np.asarray(gt, float).reshape(-1, 4), np.asarray(boxes, float).reshape(-1, 4)
    overlap = iou_matrix(boxes, gt) if len(gt) and len(boxes) else np.zeros((len(boxes), len(gt)))
    tags = []
    if len(gt) and (overlap > iou).any(axis=0).any():
        tags.append("hit")
    if len(gt) and not (overlap > iou).any(axis=0).all():
        tags.append("miss")
    if len(boxes) and not (overlap > iou).any(axis=1).all():
        tags.append("false-positive")
    return tags
