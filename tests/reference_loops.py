"""Plain reference implementations the metric tests compare against: as simple as possible, no scipy."""
from __future__ import annotations

import numpy as np


def flood_components(fg: np.ndarray) -> list[list[tuple[int, int]]]:
    """8-connected components of a 2-D mask, in raster order of their first pixel, by depth-first flood fill."""
    h, w = fg.shape
    seen = np.zeros_like(fg, dtype=bool)
    comps = []
    for i in range(h):
        for j in range(w):
            if fg[i, j] and not seen[i, j]:
                stack, cells = [(i, j)], []
                seen[i, j] = True
                while stack:
                    y, x = stack.pop()
                    cells.append((y, x))
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            yy, xx = y + dy, x + dx
                            if 0 <= yy < h and 0 <= xx < w and fg[yy, xx] and not seen[yy, xx]:
                                seen[yy, xx] = True
                                stack.append((yy, xx))
                comps.append(cells)
    return comps
