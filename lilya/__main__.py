"""``python -m lilya`` and the ``lilya`` console script: see :mod:`lilya.cli`."""

from __future__ import annotations

from lilya.cli import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover - runs in a subprocess (tests/test_cli.py)
    raise SystemExit(main())
