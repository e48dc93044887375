"""Fairway's views in Jupyter: one call per view, shown inline in the notebook.

    from runners.notebook import show_stats, show_schema, show_anomalies
    show_stats()                                  # the latest run: train vs eval
    show_stats("data.csv", compare="eval@RUN_ID", config="my.toml")
    show_schema()                                 # the latest run's curated schema
    show_anomalies()                              # its ExampleValidator anomalies
    show_model()                                  # its model view (Fairness Indicators)

Each call returns a `View`: the last expression of a cell is shown inline (`_repr_html_`);
elsewhere in a cell, `display(show_stats(...))`. `.html` is the page and `.save(path)` writes
it, as `fairway stats` does.

The sources are `fairway stats`'s (runners.stats_cmd resolves them): `train`/`eval` of the
latest run, `SPLIT@RUN_ID`, a CSV file or span folder, `logs:DIR` (with `window=N`), a
`FeatureStats.pb`. `config` is a config file, a preset name or a PipelineConfig; by default
the CLI's (the census preset).

A whole page (the statistics view, with its inlined Vega scripts) is shown in an
`<iframe srcdoc="...">`: the classic notebook, JupyterLab and VS Code each treat scripts inside
HTML outputs differently (run, drop, or run only in a trusted notebook), while a sandboxed
iframe runs the page as the browser runs the file, with no network and no script in the
notebook's own document. TFDV's `visualize_statistics` also puts Facets in an iframe, but fills
it from a script of the output and loads Facets from the network. The tables (schema,
anomalies) have no script and are shown inline, as HTML.

A mistake (a source that does not exist, a bad config) raises a NotebookError whose message
names it and what was expected; IPython shows that message alone, not a traceback
(`_render_traceback_`).
"""
from __future__ import annotations

import argparse
import contextlib
import html
import os
import pathlib
from typing import Iterator, Sequence, Union

from pipeline import config as config_lib
from pipeline.errors import FairwayError

HEIGHT = 720  # px: the iframe of a page; the page scrolls inside it (its controls stay on top)

Config = Union[str, os.PathLike, config_lib.PipelineConfig, None]


class NotebookError(FairwayError):
    """A user's mistake in a notebook call; IPython prints the message, not a traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


@contextlib.contextmanager
def _user_errors(call: str) -> Iterator[None]:
    """The failures `fairway` prints as one line (cli.main) become NotebookErrors; a message
    that does not say which call failed is prefixed with it."""
    from runners.stats_cmd import StatsError

    try:
        yield
    except NotebookError:
        raise
    except (FairwayError, FileNotFoundError, LookupError) as err:
        text = str(err) if isinstance(err, StatsError) else f"{call}: {err}"
        raise NotebookError(text) from None


def pipeline_config(value: Config = None) -> config_lib.PipelineConfig:
    """The pipeline config of a notebook call: a PipelineConfig as is, a config file, a preset
    name (census, taxi), or None for the CLI's default (runners.cli, without --config)."""
    from runners import cli

    if isinstance(value, config_lib.PipelineConfig):
        return value
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise NotebookError(f"config={value!r}: expected a config file's path, a preset name "
                            f"({', '.join(config_lib.presets())}) or a PipelineConfig")
    args = argparse.Namespace(config=None, dataset=None, output=None, data=None)
    if value is not None and str(value) in config_lib.presets() \
            and not os.path.exists(value):
        args.dataset = str(value)
    elif value is not None:
        args.config = os.fspath(value)
    with _user_errors("config"):
        return cli._config(args)


class View:
    """What the show_* calls return. Jupyter shows it inline; `.html` is the whole page,
    `.save(path)` writes it (self-contained, opens offline in any browser)."""

    def __init__(self, page: str, title: str, height: int = HEIGHT, inline: str | None = None):
        self.html, self.title, self.height, self._inline = page, title, height, inline

    def _repr_html_(self) -> str:
        if self._inline is not None:
            return self._inline
        # srcdoc holds the page html-escaped; only scripts run (no same origin: the page cannot
        # reach the notebook), and nothing it needs is outside it.
        return (f'<iframe class="fairway-view" title="{html.escape(self.title)}" '
                f'sandbox="allow-scripts" srcdoc="{html.escape(self.html, quote=True)}" '
                f'style="width:100%;height:{int(self.height)}px;border:1px solid #ddd;'
                f'resize:vertical"></iframe>')

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        target = pathlib.Path(path)
        target.write_text(self.html, encoding="utf-8")
        return target

    def __repr__(self) -> str:
        return (f"<fairway view {self.title!r}: {len(self.html) / 1024:.0f} KB of HTML; shown "
                f"inline in Jupyter, .save(path) writes the page>")


def show_page(html_text: str, title: str = "Fairway", height: int = HEIGHT) -> View:
    """Any self-contained page (views.stats.page, the model view, a report) as a View, shown
    in a sandboxed iframe `height` px tall."""
    if not isinstance(html_text, str) or "<" not in html_text:
        raise NotebookError(f"show_page: expected the text of an HTML page, got "
                            f"{type(html_text).__name__} {str(html_text)[:60]!r}")
    return View(html_text, title, height)


def show_stats(source: str | None = None, compare: str | Sequence[str] | None = None,
               config: Config = None, window: int | None = None, sort: str | None = None,
               height: int = HEIGHT) -> View:
    """The statistics view of `source` with `compare` overlaid (one source or a list), as
    `fairway stats SOURCE --compare COMPARE` writes it: by default the latest run's train vs
    eval. `window`: the last N requests of a `logs:DIR` source; `sort`: name, distance,
    missing or nonuniformity."""
    from runners import stats_cmd

    others = [compare] if isinstance(compare, str) else list(compare or [])
    chosen = stats_cmd.specs(source, others)
    call = f"show_stats({', '.join(map(repr, chosen))})"
    if window is not None and not any(s.startswith("logs:") for s in chosen):
        raise NotebookError(f"{call}: window={window!r} is only for a 'logs:DIR' source "
                            "(the last N requests)")
    if sort not in (None, "name", "distance", "missing", "nonuniformity"):
        raise NotebookError(f"{call}: sort={sort!r}: expected name, distance, missing or "
                            "nonuniformity")
    cfg = pipeline_config(config)
    with _user_errors(call):
        page, labels = stats_cmd.page(cfg, chosen, window, sort)
    return View(page, f"Statistics: {' vs '.join(labels)}", height)


def _tables(title: str, body: str) -> View:
    """A script-free table of views.stats, inline, in the statistics view's style (scoped to
    .fw-stats, so it does not restyle the notebook)."""
    from views import stats as view

    part = f'<div class="fw-stats"><style>{view.STYLE}</style><h3>{html.escape(title)}</h3>' \
           f"{body}</div>"
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>'
            f"{html.escape(title)}</title></head><body>{part}</body></html>\n")
    return View(page, title, inline=part)


def show_schema(config: Config = None, run: str | None = None) -> View:
    """The curated schema of the latest run (or run id `run`) as ImportSchemaGen staged it:
    a feature a row (type, presence, domain, value range, comparators, environments)."""
    from pipeline import artifacts, metadata
    from views import stats as view

    cfg = pipeline_config(config)
    with _user_errors("show_schema"):
        summary = metadata.run_summary(cfg, run)
        schema = artifacts.load_schema(metadata.node_artifact(summary, "ImportSchemaGen",
                                                              "Schema"))
    return _tables(f"Schema of run {summary['run_id']}", view.schema_table(schema))


def show_anomalies(config: Config = None, run: str | None = None) -> View:
    """ExampleValidator's anomalies of every split of the latest run (or run id `run`)."""
    from pipeline import artifacts, metadata
    from runners.stats_cmd import _splits
    from views import stats as view

    cfg = pipeline_config(config)
    with _user_errors("show_anomalies"):
        summary = metadata.run_summary(cfg, run)
        uri = metadata.node_artifact(summary, "ExampleValidator", "ExampleAnomalies")
        found = {split: artifacts.load_anomalies(uri, split) for split in _splits(uri)}
    return _tables(f"Anomalies of run {summary['run_id']}", view.anomalies_table(found))


def show_model(config: Config = None, run: str | None = None, height: int = HEIGHT) -> View:
    """The model view of the latest run (or run id `run`): Fairness Indicators' rates per
    slice across thresholds (with TFMA's intervals when the Evaluator computed them), the gaps
    to the reference group against the gate, ROC, precision-recall and calibration, and the
    highest-loss eval rows filterable by slice (docs/model-view.md)."""
    from monitoring import run_report
    from pipeline import metadata

    cfg = pipeline_config(config)
    with _user_errors("show_model"):
        summary = metadata.run_summary(cfg, run)
        page, _ = run_report.model_page(cfg, summary)
        if page is None:
            raise NotebookError(f"show_model: run {summary['run_id']} has no Evaluator output "
                                "(it failed or stopped before the Evaluator); pass run=... of "
                                "a run that evaluated a model")
    return show_page(page, f"Model of run {summary['run_id']}", height)
