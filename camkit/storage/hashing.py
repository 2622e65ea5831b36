"""One rule for a short, stable hash of JSON-able data (key order does not matter): the model store's
training fingerprints and the bench's configurations are both named by it."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``obj`` as sorted-key JSON (objects JSON cannot hold
    are taken by their ``str``)."""
    blob = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
