"""camkit plugin package camkit_synthetic."""
