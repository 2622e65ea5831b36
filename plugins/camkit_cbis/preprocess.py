"""One CBIS-DDSM image and its ROI masks -> the model's input and :class:`~camkit.data.masks.Lesions`.

The mask of a ROI series is found from its files' content, never from names (Q3/Q4): an 8-bit file, or failing
that one with at most two grey levels, whose size is (nearly) the full image's; the crop is the small 16-bit one.
Headers are read first, so the ~25 MB full-size files are decoded only when needed. A mask within 1% of the
image's size on each side is stretched to it (Q5, :func:`camkit.data.masks.align_mask`); a larger mismatch is
bad input. The flip is decided from the pixels (Q10: the films were digitised on several scanners).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from camkit.data.cache import Settings
from camkit.data.dicom import DicomReadError, load_unit_image, read_header
from camkit.data.masks import Lesions, MaskSizeError, align_mask, lesions_from_masks
from camkit.data.sample import BoxTransform

from .layout import CbisError

# A candidate mask must cover at least this share of the image's rows and columns (a crop is a few hundred px).
_MIN_SIZE_SHARE = 0.5


def _decode_raw(path: Path, where: str) -> np.ndarray:
    import pydicom

    try:
        return np.asarray(pydicom.dcmread(path).pixel_array)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on damaged files
        raise DicomReadError(f"{path} ({where}): cannot decode its pixels ({type(exc).__name__}: {exc}); "
                             "download it again, or pass skip_bad=True (--skip-bad)") from None


def find_mask(root: Path, files: tuple[str, ...], shape: tuple[int, int], where: str) -> np.ndarray:
    """The (H, W) bool mask among a ROI series' ``files``, aligned to the image ``shape`` (see the module
    docstring); CbisError naming the files and the CSV row when none qualifies or its size is too far off."""
    h, w = shape
    headers = []
    for f in files:
        ds = read_header(root / f, where, check_size=False)
        headers.append((f, int(ds.get("BitsAllocated", 16)), int(ds.Rows), int(ds.Columns)))
    big = [x for x in headers if x[2] >= _MIN_SIZE_SHARE * h and x[3] >= _MIN_SIZE_SHARE * w]
    # 8-bit files first, then the others by closeness to the image's size; the first with <= 2 levels is the mask
    order = sorted(big, key=lambda x: (x[1] != 8, abs(x[2] - h) + abs(x[3] - w)))
    for f, bits, rows, cols in order:
        pixels = _decode_raw(root / f, where)
        levels = np.unique(pixels[:: max(1, rows // 512), :: max(1, cols // 512)])
        if len(levels) > 2 or (bits != 8 and len(np.unique(pixels)) > 2):
            continue
        mask = pixels > pixels.min() if len(levels) == 2 else pixels > 0
        if not mask.any():
            raise CbisError(f"{where}: the ROI mask {root / f} is empty (no lesion pixels); pass skip_bad=True "
                            "(--skip-bad) to leave the image out")
        try:
            aligned, _ = align_mask(mask, shape)
        except MaskSizeError as exc:
            raise CbisError(f"{where}: the ROI mask {root / f}: {exc} (CBIS-DDSM Q5; what such a mask means is "
                            "unknown, so it is not used); pass skip_bad=True (--skip-bad) to leave the image "
                            "out") from None
        return aligned
    sizes = ", ".join(f"{root / f} {r}x{c} {b}-bit" for f, b, r, c in headers)
    raise CbisError(f"{where}: no ROI mask among {sizes} (a mask is a two-level image about the size of the "
                    f"{h}x{w} mammogram); pass skip_bad=True (--skip-bad) to leave the image out")


def prepare_record(root: Path, record: Any, settings: Settings) -> tuple[torch.Tensor, BoxTransform, Lesions]:
    """The cache's ``prepare_fn``: ``(image (1, H, W) in [0, 1], transform, lesions)`` of one record."""
    from camkit.data import imaging

    root = Path(root)
    pixels = load_unit_image(root / record.files[0], record.where(), voi=settings.voi)
    masks = [find_mask(root, files, pixels.shape, where) for files, where in record.extra.get("rois", [])]
    image, transform = imaging.prepare(pixels, settings.size, laterality=record.laterality,
                                       flip="detect" if settings.flip else "none", crop_breast=settings.crop,
                                       keep_aspect=True, threshold=settings.threshold, margin=settings.margin)
    return image, transform, lesions_from_masks(masks, transform)
