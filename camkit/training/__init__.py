"""The model-agnostic training loop: recipe, device settings, state, checkpoints, data order and DDP.

Any model that follows the model contract (:class:`camkit.protocols.Model`) trains with :func:`train`.
"""
