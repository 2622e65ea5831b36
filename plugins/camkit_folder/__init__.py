"""camkit plugin package camkit_folder."""
