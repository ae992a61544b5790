"""``python -m attnmt.cli``: the same as the ``attnmt`` command."""

from . import main

main()
