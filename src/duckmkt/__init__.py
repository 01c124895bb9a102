"""duckmkt: personalized marketing with machine learning inside DuckDB.

``duckmkt.connect(path)`` opens a database with the scoring functions
registered. Training lives in ``duckmkt.training`` and is the only part that
imports TensorFlow.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("duckmkt")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"


def connect(path, model=None, **kwargs):
    """Open a duckmkt database with ``score_customer`` registered (see duckmkt.scoring.connect)."""
    from duckmkt.scoring import connect as _connect

    return _connect(path, model, **kwargs)


def register(con, model=None, **kwargs):
    """Register ``score_customer`` on an open DuckDB connection (see duckmkt.scoring.register)."""
    from duckmkt.scoring import register as _register

    return _register(con, model, **kwargs)


__all__ = ["__version__", "connect", "register"]
