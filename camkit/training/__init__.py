"""The model-agnostic training loop: recipe, device settings, state, checkpoints, data order and DDP.

Any model that follows the model contract (:class:`camkit.protocols.Model`) trains with :func:`train`.
"""
from camkit.training.config import TrainConfig, TrainResult, config_fingerprint, config_hash
from camkit.training.loop import train

__all__ = ["TrainConfig", "TrainResult", "config_fingerprint", "config_hash", "train"]
