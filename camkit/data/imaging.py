"""Shared image helpers: read PNG/DICOM, orient, crop the breast, resize and z-score.

Every dataset plugin turns a stored mammogram into a model input the same way::

    pixels = read_image(path)                                   # (H0, W0) float32 in [0, 1], tissue bright
    image, transform = preprocess(pixels, size, laterality="R")  # (1, H, W) float32 z-scored, BoxTransform

Conventions (shared with :mod:`camkit.data`):

* **Every breast faces right** in the model frame: chest wall on the left edge, nipple towards the right.
  Left views are stored that way already; right views are mirrored (``x -> W0 - x``).
* Intensities are bright for tissue: MONOCHROME1 DICOMs are inverted, and every image is rescaled to [0, 1]
  by its own minimum and maximum (the absolute scale does not survive the z-score anyway).
* Geometry is continuous (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``) and the order of operations is the
  one :class:`~camkit.data.BoxTransform` describes: flip, then crop, then resize.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from camkit.data.files import file_problem
from camkit.data.pixels import to_unit_range  # imaging.to_unit_range stays a public name
from camkit.data.sample import BoxTransform
from camkit.errors import ImageReadError

FLIP_POLICIES = ("auto", "laterality", "detect", "none")
_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}


# -- reading -----------------------------------------------------------------------------------------
def is_dicom(path: str | Path) -> bool:
    """True when ``path`` is a DICOM file (by extension, or by the ``DICM`` marker at byte 128)."""
    path = Path(path)
    if path.suffix.lower() in _DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_image(path: str | Path, *, voi: bool = True) -> np.ndarray:
    """Read a PNG/JPEG/TIFF or DICOM mammogram as an (H, W) float32 array in [0, 1], tissue bright.

    DICOMs go through :func:`camkit.data.dicom.read_dicom` (``voi`` selects the VOI LUT/windowing step);
    everything else through :func:`read_picture`. Raises :class:`ImageReadError` naming the file when it
    cannot be read.
    """
    from camkit.data.dicom import read_dicom

    path = Path(path)
    _require_file(path)
    return read_dicom(path, voi=voi) if is_dicom(path) else read_picture(path)


def _require_file(path: Path) -> None:
    """Raise :class:`ImageReadError` saying what ``path`` is when it is not a readable regular file (a folder,
    a FIFO, a symlink loop: opening a FIFO would hang, so this is asked before anything opens it)."""
    problem = file_problem(path)
    if problem:
        raise ImageReadError(f"image file {str(path)!r} {problem}")


def read_picture(path: str | Path) -> np.ndarray:
    """Read an 8- or 16-bit greyscale picture (PNG, TIFF, JPEG ...) with Pillow; colour is converted to grey.

    Returns (H, W) float32 rescaled to [0, 1] by the image's own min and max.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L"):
                arr = np.asarray(im)
            elif im.mode in ("LA", "PA"):
                arr = np.asarray(im.getchannel(0))
            else:  # palette, RGB, RGBA, CMYK ...: luminance
                arr = np.asarray(im.convert("L"))
        return to_unit_range(arr)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for corrupt files
        raise ImageReadError(f"cannot read image {str(path)!r}: {type(exc).__name__}: {exc}") from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file from its header only (no pixel decoding). Raises :class:`ImageReadError`."""
    path = Path(path)
    _require_file(path)
    try:
        if is_dicom(path):
            from camkit.data.dicom import read_header

            ds = read_header(path, check_size=False)
            return int(ds.Rows), int(ds.Columns)
        from PIL import Image

        with Image.open(path) as im:
            return im.height, im.width
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(f"cannot read image header of {str(path)!r}: {type(exc).__name__}: {exc}") from exc


# -- orientation -------------------------------------------------------------------------------------
def mirror(img: np.ndarray) -> np.ndarray:
    """Mirror an (H, W) image left-right (a right view -> facing right). Returns a contiguous copy."""
    return np.ascontiguousarray(img[:, ::-1])


def faces_left(img: np.ndarray) -> bool:
    """Guess from the pixels whether a breast faces left (chest wall on the right edge).

    Compares the mean intensity of the outer fifths of the columns: the chest wall side holds the tissue.
    """
    w = max(1, img.shape[1] // 5)
    return float(img[:, -w:].mean()) > float(img[:, :w].mean())


def needs_flip(img: np.ndarray, laterality: str | None, policy: str = "auto") -> bool:
    """Whether to mirror ``img`` so that the breast faces right.

    ``policy``: ``"laterality"`` mirrors right views (``"R"``) only; ``"detect"`` decides from the pixels
    (:func:`faces_left`) whatever the laterality; ``"auto"`` uses the laterality when known and the pixels
    otherwise; ``"none"`` never mirrors.
    """
    if policy not in FLIP_POLICIES:
        raise ValueError(f"flip policy {policy!r} is not one of {', '.join(FLIP_POLICIES)}")
    if policy == "none":
        return False
    if policy == "detect" or (policy == "auto" and laterality is None):
        return faces_left(img)
    return laterality == "R"


# -- breast crop -------------------------------------------------------------------------------------
def breast_bbox(img: np.ndarray, *, threshold: float = 0.1, margin: float = 0.02,
                max_side: int = 512) -> tuple[int, int, int, int]:
    """Bounding box (y0, x0, y1, x1) of the breast: the largest connected region brighter than ``threshold``.

    ``img`` is (H, W) in [0, 1] with tissue bright. The mask is computed on a copy subsampled to at most
    ``max_side`` pixels per side (speed), so labels and markers that do not touch the breast are ignored.
    ``margin`` (fraction of the longer image side) is added on every side, clipped to the image. Returns the
    whole image when nothing exceeds the threshold.
    """
    from scipy import ndimage

    h, w = img.shape
    step = max(1, math.ceil(max(h, w) / max_side))
    small = img[::step, ::step] > threshold
    labels, count = ndimage.label(small)
    if count == 0:
        return 0, 0, h, w
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    sl = ndimage.find_objects((labels == int(sizes.argmax())).astype(np.int32))[0]
    pad = int(round(margin * max(h, w)))
    y0 = max(0, sl[0].start * step - pad)
    x0 = max(0, sl[1].start * step - pad)
    y1 = min(h, sl[0].stop * step + pad)
    x1 = min(w, sl[1].stop * step + pad)
    return y0, x0, y1, x1


def fit_aspect(box: tuple[int, int, int, int], aspect: float) -> tuple[int, int, int, int]:
    """Grow a (y0, x0, y1, x1) box to height/width ratio ``aspect`` without shrinking it.

    Height grows evenly up and down; width grows to the right only (away from the chest wall, which stays
    on the left edge). The result may reach outside the image; :func:`crop` pads that with background.
    """
    y0, x0, y1, x1 = box
    h, w = y1 - y0, x1 - x0
    if h / w > aspect:  # too tall: widen towards the nipple side
        x1 = x0 + int(math.ceil(h / aspect))
    else:  # too wide: heighten both ways
        extra = int(math.ceil(w * aspect)) - h
        y0 -= extra // 2
        y1 = y0 + int(math.ceil(w * aspect))
    return y0, x0, y1, x1


def crop(img: np.ndarray, box: tuple[int, int, int, int], fill: float = 0.0) -> np.ndarray:
    """Cut (y0, x0, y1, x1) out of an (H, W) image; parts outside the image are filled with ``fill``."""
    y0, x0, y1, x1 = (int(v) for v in box)
    h, w = img.shape
    if 0 <= y0 and 0 <= x0 and y1 <= h and x1 <= w:
        return img[y0:y1, x0:x1]
    out = np.full((y1 - y0, x1 - x0), fill, dtype=img.dtype)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)
    if sy1 > sy0 and sx1 > sx0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return out


# -- resize and normalise ----------------------------------------------------------------------------
def resize_masks(masks: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (N, H, W) boolean lesion masks to ``size`` = (H', W'): each output pixel takes the input pixel
    under its centre (torch's ``nearest-exact``), the same continuous frame :func:`resize` keeps. Returns a
    bool tensor (N, H', W')."""
    import torch.nn.functional as F

    t = torch.as_tensor(np.ascontiguousarray(masks) if isinstance(masks, np.ndarray) else masks)
    if t.ndim != 3:
        raise ValueError(f"resize_masks expects (N, H, W) masks, got shape {tuple(t.shape)}")
    if tuple(t.shape[-2:]) == tuple(size) or t.shape[0] == 0:
        return t.bool().reshape(t.shape[0], *size) if t.shape[0] == 0 else t.bool()
    return F.interpolate(t[:, None].float(), size=tuple(size), mode="nearest-exact")[:, 0] > 0.5


def resize(img: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an (H, W) or (1, H, W) image to ``size`` = (H', W') with bilinear interpolation.

    Antialiasing is on whenever a side shrinks (bilinear without it aliases fine texture into the model's
    input). Uses ``align_corners=False``, so continuous coordinates scale exactly by H'/H and W'/W, as
    :class:`~camkit.data.BoxTransform` assumes. Returns a float32 tensor (1, H', W').
    """
    t = torch.as_tensor(np.ascontiguousarray(img) if isinstance(img, np.ndarray) else img,
                        dtype=torch.float32)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] != 1:
        raise ValueError(f"resize expects an (H, W) or (1, H, W) image, got shape {tuple(t.shape)}")
    size = (int(size[0]), int(size[1]))
    if tuple(t.shape[-2:]) == size:
        return t.clone()
    antialias = size[0] < t.shape[-2] or size[1] < t.shape[-1]
    return F.interpolate(t.unsqueeze(0), size=size, mode="bilinear", align_corners=False,
                         antialias=antialias)[0]


def zscore(img: np.ndarray | torch.Tensor, mean: float | None = None, std: float | None = None,
           eps: float = 1e-6) -> Any:
    """Per-image z-score: ``(img - mean) / std``; ``mean``/``std`` default to the image's own.

    Pass statistics explicitly to normalise one image with another's (the synthetic data takes them from
    the mass-free image, so that the mass cannot shift the statistics and leak the label).
    """
    if mean is None:
        mean = float(img.mean())
    if std is None:
        std = float(img.std())
    return (img - mean) / max(float(std), eps)


# -- the whole pipeline ------------------------------------------------------------------------------
def prepare(img: np.ndarray, size: tuple[int, int], *, laterality: str | None = None, flip: str = "auto",
            crop_breast: bool = True, keep_aspect: bool = True, threshold: float = 0.1,
            margin: float = 0.02) -> tuple[torch.Tensor, BoxTransform]:
    """The geometric half of :func:`preprocess`: stored (H0, W0) [0, 1] image -> (1, H, W) float32 in [0, 1]
    (oriented, cropped, resized, clamped) and its BoxTransform. Caches store this half (VinDr's does)."""
    if img.ndim != 2:
        raise ValueError(f"preprocess expects an (H, W) image, got shape {img.shape}")
    flipped = needs_flip(img, laterality, flip)
    oriented = mirror(img) if flipped else img
    box = None
    if crop_breast:
        box = breast_bbox(oriented, threshold=threshold, margin=margin)
        if keep_aspect:
            box = fit_aspect(box, size[0] / size[1])
        oriented = crop(oriented, box)
    elif keep_aspect:
        h0, w0 = oriented.shape
        box = fit_aspect((0, 0, h0, w0), size[0] / size[1])
        if box != (0, 0, h0, w0):
            oriented = crop(oriented, box)
        else:
            box = None
    image = resize(oriented, size).clamp_(0.0, 1.0)  # antialiasing may overshoot [0, 1] slightly
    transform = BoxTransform(original_size=(int(img.shape[0]), int(img.shape[1])),
                             model_size=(int(size[0]), int(size[1])),
                             crop=tuple(float(v) for v in box) if box is not None else None,
                             flipped=flipped)
    return image, transform


def preprocess(img: np.ndarray, size: tuple[int, int], *, laterality: str | None = None,
               flip: str = "auto", crop_breast: bool = True, keep_aspect: bool = True,
               threshold: float = 0.1, margin: float = 0.02) -> tuple[torch.Tensor, BoxTransform]:
    """Stored (H0, W0) [0, 1] image -> model input (1, H, W) float32 z-scored, and its BoxTransform.

    Mirrors when :func:`needs_flip` says so (``flip`` policy and ``laterality``), crops to the breast
    (:func:`breast_bbox`, grown to the model's aspect ratio with :func:`fit_aspect` when ``keep_aspect``),
    resizes (:func:`resize`) -- that much is :func:`prepare` -- and z-scores (:func:`zscore`). Boxes in the
    stored image's pixels go to the model frame with ``transform.to_model(boxes)`` and back with
    ``transform.to_original(boxes)``.
    """
    image, transform = prepare(img, size, laterality=laterality, flip=flip, crop_breast=crop_breast,
                               keep_aspect=keep_aspect, threshold=threshold, margin=margin)
    return zscore(image), transform
