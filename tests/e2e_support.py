"""One trained census run for the whole test session: the end-to-end files that only read it
share it, and those that write (promote, push, roll out) take a copy of their own
(`copy_run`), so no result depends on which file runs first."""
from __future__ import annotations

import pathlib
import shutil

import pytest

from pipeline import config
from runners import cli

SAMPLE, STEPS = "2000", "200"


@pytest.fixture(scope="session")
def census_config(tmp_path_factory) -> pathlib.Path:
    """The census preset with a looser FPR-gap bound: a 200-step model on 2,000 rows is not
    tuned to the full-data bound (tests/test_e2e.py tests the gate itself)."""
    text = (config.PRESETS_DIR / "census.toml").read_text()
    assert "max_fpr_gap = 0.05" in text
    path = tmp_path_factory.mktemp("config") / "census.toml"
    path.write_text(text.replace("max_fpr_gap = 0.05", "max_fpr_gap = 0.2"))
    return path


def run(path: pathlib.Path, out: pathlib.Path, *extra: str) -> int:
    return cli.main(["run", "--config", str(path), "--sample", SAMPLE, "--train-steps", STEPS,
                     "--output", str(out), *extra])


@pytest.fixture(scope="session")
def census_run(census_config, tmp_path_factory) -> config.PipelineConfig:
    out = tmp_path_factory.mktemp("census")
    assert run(census_config, out) == 0
    return config.load(census_config, output_dir=out)


def copy_run(cfg: config.PipelineConfig, path: pathlib.Path,
             dest: pathlib.Path) -> config.PipelineConfig:
    """The trained run in a folder of its own. The copied MLMD store still names the shared
    run's artifacts (absolute URIs), which a copy only reads; what it writes (registry
    changes, new pushes) stays in the copy."""
    shutil.copytree(cfg.output_dir, dest)
    return config.load(path, output_dir=dest)
