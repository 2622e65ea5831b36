"""A plugin whose import calls sys.exit(3): camkit must report it, not exit with it."""
import sys

sys.exit(3)
