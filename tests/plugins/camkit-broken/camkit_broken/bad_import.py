"""Fails at import, like a plugin whose dependency is missing."""
import camkit_this_module_does_not_exist  # noqa: F401
