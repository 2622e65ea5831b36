"""camkit plugin package camkit_vindr."""
