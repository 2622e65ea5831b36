"""camkit plugin package camkit_gmic."""
