"""One file per activation-map method: its formula, its paper and an example, nothing else.

A new method goes here (or in a plugin package) as a :class:`camkit.cams.base.CAMMethod` subclass, registered
in :mod:`camkit.cams.builtin`; the engine (:mod:`camkit.cams.engine`) does the rest.
"""
