"""Shared fixtures. Tests that need ../shared (golden files, real images) skip cleanly without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    candidates = [os.environ.get("CAMKIT_SHARED"), REPO.parent / "shared", REPO / "shared"]
    for c in candidates:
        if c and (Path(c) / "SPEC.md").is_file():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's ../shared folder (reference data); the test is skipped when it is absent."""
    d = _shared_dir()
    if d is None:
        pytest.skip("../shared (reference data) is not available in this checkout")
    return d


@pytest.fixture
def fresh_plugins():
    """Reload plugins before and after the test, so in-process registrations do not leak."""
    from camkit.registry import host as plugins

    plugins.reset()
    yield plugins
    plugins.reset()


@pytest.fixture(autouse=True, scope="session")
def _few_threads():
    # Two cores are shared by everything on CI machines; keep torch from oversubscribing them.
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: on a shared, busy 2-core machine two OpenMP threads spin against
    each other (10x slower on small ops)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def free_port() -> int:
    """A free TCP port on the loopback interface (for torchrun's rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_runtest_setup(item):
    """A test marked ``gpu`` (pyproject's markers) skips, saying why, where torch sees no CUDA device: run
    them on a GPU machine with ``python -m pytest -m gpu``."""
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.skip("marked gpu: no CUDA device is visible to torch")
