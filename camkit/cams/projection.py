"""Principal-component projections of a layer's activations, batched in torch (EigenCAM, KPCA-CAM).

Each image's activations (K, h, w) are read as h*w samples of K features and centred per feature. The
linear projection is the samples' coordinate on their first principal direction; the kernel one is the first
kernel principal component. Both need one eigenpair only (:func:`top_eigenpair`: dense below 256, Lanczos
above), computed in float64 (the K x K or hw x hw problems are small, and the
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
    # only the top eigenvector is needed: a full eigh of the 512 x 512 scatter of a ResNet's last stage cost
    # more than all other one-pass maps together (benchmarks/test_cam_speed.py)
    _, top = top_eigenpair(s.transpose(1, 2) @ s)
    proj = (s @ top[..., None]).squeeze(-1)
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
    lam, v = top_eigenpair(gram)
    lam = lam.clamp(min=0)
    pick = v.abs().argmax(dim=1, keepdim=True)
    v = v * torch.sign(v.gather(1, pick))
    proj = v * lam.sqrt()[:, None]
    return proj.reshape(x.shape[0], *x.shape[2:]).to(x.dtype)


#: Below this size a full ``eigh`` is cheap; above it the top pair comes from a Lanczos projection.
DENSE_BELOW = 256
LANCZOS_STEPS = 96
CHECK_EVERY = 12  # Ritz pairs checked this often; most maps converge in 24-48 steps
RESIDUAL_TOL = 1e-10  # of ||A||, for every image: an image that misses it gets the dense solver


def top_eigenpair(a: Tensor) -> tuple[Tensor, Tensor]:
    """Largest (algebraic) eigenvalue (B,) and its unit eigenvector (B, n) of symmetric matrices (B, n, n).

    KPCA-CAM needs one eigenpair of an (h*w)^2 Gram matrix; a full ``eigh`` costs O(n^3) for all n pairs (0.55 s
    at n = 1380 in float64 on 2 cores, more than the rest of the method). Above :data:`DENSE_BELOW` this runs
    :data:`LANCZOS_STEPS` Lanczos steps with full re-orthogonalisation from a fixed start vector (batched matrix
    products on the device, as ARPACK does for scikit-learn's ``KernelPCA``), takes the Rayleigh-Ritz pair of
    the Krylov basis, and checks its residual ``||A v - lambda v|| <= 1e-10 ||A||``; any image that misses it is
    solved densely, so the result is the dense one to round-off.
    """
    n = a.shape[-1]
    if n <= DENSE_BELOW:
        values, vectors = torch.linalg.eigh(a)
        return values[..., -1], vectors[..., -1]
    steps = min(LANCZOS_STEPS, n)
    gen = torch.Generator().manual_seed(0)  # fixed start: not the all-ones null vector of a centred Gram matrix
    q = torch.rand(n, generator=gen, dtype=torch.float64).to(a.device, a.dtype) - 0.5
    q = (q / q.norm()).expand(a.shape[0], n)
    basis = torch.zeros(a.shape[0], steps, n, dtype=a.dtype, device=a.device)
    products = torch.zeros_like(basis)  # A q_j, kept for the Rayleigh-Ritz step
    scale = torch.linalg.matrix_norm(a, ord="fro")
    tiny = 1e-12 * scale[:, None]
    lam = v = None
    for j in range(steps):
        basis[:, j] = q
        w = torch.bmm(a, q[..., None])[..., 0]
        products[:, j] = w
        for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
            w = w - torch.einsum("bj,bjn->bn", torch.einsum("bjn,bn->bj", basis[:, :j + 1], w), basis[:, :j + 1])
        norm = w.norm(dim=1, keepdim=True)
        # an exhausted Krylov space (norm ~ 0) adds a zero direction, which the Ritz step ignores
        q = torch.where(norm > tiny, w / norm.clamp(min=1e-300), 0.0)
        if (j + 1) % CHECK_EVERY == 0 or j + 1 == steps:
            lam, v, residual = _ritz(basis[:, :j + 1], products[:, :j + 1])
            if bool((residual <= RESIDUAL_TOL * scale).all()):
                return lam, v
    bad = (residual > RESIDUAL_TOL * scale).nonzero().flatten().tolist()
    values, vectors = torch.linalg.eigh(a[bad])
    lam, v = lam.clone(), v.clone()
    lam[bad], v[bad] = values[:, -1], vectors[:, :, -1]
    return lam, v


def _ritz(basis: Tensor, products: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Top Rayleigh-Ritz pair of an orthonormal basis (B, m, n) given ``A q_j`` (B, m, n), and its residual."""
    projected = basis @ products.transpose(1, 2)
    values, vectors = torch.linalg.eigh((projected + projected.transpose(1, 2)) / 2)
    top = vectors[:, :, -1]
    lam = values[:, -1]
    v = torch.einsum("bj,bjn->bn", top, basis)
    av = torch.einsum("bj,bjn->bn", top, products)
    norm = v.norm(dim=1, keepdim=True)
    v, av = v / norm, av / norm
    return lam, v, (av - lam[:, None] * v).norm(dim=1)
