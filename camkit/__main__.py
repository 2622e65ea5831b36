"""``python -m camkit`` is the ``camkit`` command."""
from camkit.cli import main

main()
