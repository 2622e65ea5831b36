"""The plugin system: hook specifications, the plugin host that loads entry points, and the name tables.

Everything camkit knows by name (CAM methods, models, datasets, backbones, recipes, plugin commands) arrives here
through the ``camkit`` entry-point group; :mod:`camkit.registry.api` looks names up and creates objects.
"""
