"""``camkit bench``: recipes (presets, shared with ``camkit train``), the train-cam x test-cam runner, scoring,
the results schema and leaderboards. Rendering them is :mod:`camkit.ui`'s job."""
