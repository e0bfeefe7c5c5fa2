"""Optuna storage for the tuning runs: SQLite by default, PostgreSQL for several workers.

Several ``python -m blend.tune`` workers (on one or several machines) share one study by pointing
``--storage`` at the same database; :func:`open_study` creates or joins it.
"""

from __future__ import annotations

import random
import time


def storage_url(url: str) -> str:
    """An Optuna storage URL SQLAlchemy can open here: ``postgresql://`` means psycopg (v3) to
    SQLAlchemy 2.1; with only psycopg2 installed it becomes ``postgresql+psycopg2://``."""
    import importlib.util

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix) and importlib.util.find_spec("psycopg") is None \
                and importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def open_study(name: str, storage: str, sampler, attempts: int = 6):
    """Create or join a study. Workers started together race to create the storage's tables and
    the study (a unique-key violation for the loser); retry after a short random pause."""
    import optuna

    for attempt in range(attempts):
        try:
            return optuna.create_study(study_name=name, storage=storage_url(storage), direction="maximize",
                                       sampler=sampler, load_if_exists=True)
        except Exception as exc:  # noqa: BLE001 - sqlalchemy IntegrityError, optuna DuplicatedStudyError
            if attempt == attempts - 1 or not _is_race(exc):
                raise
            time.sleep(0.2 + random.random() * (attempt + 1))


def _is_race(exc: Exception) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    races = ("IntegrityError", "UniqueViolation", "DuplicatedStudyError", "already exists")
    return any(k in text for k in races)
