"""``python -m worker.cli``: the ``taskstore`` command (``worker.tools.cli``)."""

from worker.tools.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
