"""Principal-component projections of a layer's activations, batched in torch (EigenCAM, KPCA-CAM).

Each image's activations (K, h, w) are read as h*w samples of K features and centred per feature. The
linear projection is the samples' coordinate on their first principal direction; the kernel one is the first
kernel principal component. Both are computed in float64 (the K x K or hw x hw problems are small, and the
eigenvector of a near-degenerate spectrum is where float32 would differ from the references' LAPACK) and
returned in the activations' dtype.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _samples(x: Tensor) -> Tensor:
    """(B, K, h, w) -> (B, h*w, K), each feature centred over the image's h*w samples; NaN read as 0."""
    s = torch.nan_to_num(x.double(), nan=0.0).flatten(2).transpose(1, 2)
    return s - s.mean(dim=1, keepdim=True)


def first_component(x: Tensor, sign: str = "max_abs") -> Tensor:
    """Projection of every location on the first principal direction: (B, K, h, w) -> (B, h, w).

    The direction is the top eigenvector of the centred samples' K x K scatter matrix, i.e. the first right
    singular vector of the SVD grad-cam 1.5.7 runs (``get_2d_projection``). A singular vector has no sign;
    ``sign="max_abs"`` flips the map when its most negative value outweighs its largest (``|min| > |max|``), as
    grad-cam's ``get_2d_projection_with_sign_correction`` (Seg-Eigen-CAM, eq. 13) does, so the strongest
    response is positive; ``sign=None`` leaves the solver's sign.
    """
    s = _samples(x)
    _, vectors = torch.linalg.eigh(s.transpose(1, 2) @ s)  # ascending eigenvalues: the last is the top one
    proj = (s @ vectors[..., -1:]).squeeze(-1)
    if sign == "max_abs":
        flip = proj.amin(dim=1).abs() > proj.amax(dim=1).abs()
        proj = torch.where(flip[:, None], -proj, proj)
    elif sign is not None:
        raise ValueError(f"first_component: sign must be 'max_abs' or None, got {sign!r}")
    return proj.reshape(x.shape[0], *x.shape[2:]).to(x.dtype)


def sigmoid_kernel_component(x: Tensor, gamma: float | None = None, coef0: float = 1.0) -> Tensor:
    """First kernel principal component of the locations, sigmoid kernel: (B, K, h, w) -> (B, h, w).

    ``k(a, b) = tanh(gamma * <a, b> + coef0)`` on the centred samples (``gamma`` None: ``1 / K``), the Gram
    matrix double-centred, its top eigenvector ``v`` scaled by ``sqrt(lambda)`` and signed so that its entry of
    largest magnitude is positive: scikit-learn's ``KernelPCA(n_components=1, kernel="sigmoid")``, which
    grad-cam 1.5.7's KPCA-CAM calls once per image. The Gram matrix is (h*w)^2 per image.
    """
    s = _samples(x)
    k = s.shape[2]
    g = 1.0 / k if gamma is None else float(gamma)
    gram = torch.tanh(g * (s @ s.transpose(1, 2)) + coef0)
    col = gram.mean(dim=1, keepdim=True)
    gram = gram - col - col.transpose(1, 2) + gram.mean(dim=(1, 2), keepdim=True)
    values, vectors = torch.linalg.eigh(gram)
    v, lam = vectors[..., -1], values[..., -1].clamp(min=0)
    pick = v.abs().argmax(dim=1, keepdim=True)
    v = v * torch.sign(v.gather(1, pick))
    proj = v * lam.sqrt()[:, None]
    return proj.reshape(x.shape[0], *x.shape[2:]).to(x.dtype)
