"""A plugin whose import raises KeyboardInterrupt: camkit must report it, not stop without a word."""
raise KeyboardInterrupt
