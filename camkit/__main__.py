"""``python -m camkit`` is the ``camkit`` command."""
from .cli import main

main()
