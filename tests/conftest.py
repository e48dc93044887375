import pathlib

import pytest

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
