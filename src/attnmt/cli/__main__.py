"""``python -m attnmt.cli``: the same as the ``attnmt`` command."""

from . import main

if __name__ == "__main__":      # not when a worker process imports it
    main()
