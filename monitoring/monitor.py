"""`fairway monitor`: serving traffic over time.

The request logs are cut into windows (by time or count). Every closed window not yet in the
history is scored against the reference of the run that pushed the version which served it
(calculator.Calculator, plus TFDV's schema anomalies), the new rows are appended to the history
in ML Metadata (history.History), and the outputs are rebuilt from the whole history: the page
over time (monitor.html), the latest window's Prometheus exposition (metrics.prom) and this
run's JSON (monitor.json). A window scored before its labels arrived is scored again once they
have, and its new rows replace the old ones.
"""
from __future__ import annotations

import collections
import csv
import hashlib
import json
import pathlib
import pickle
import re
import time
import uuid
from typing import Any, Callable

import pandas as pd

from monitoring import anomalies, exposition, page, requests, windows
from monitoring.calculator import MIN_ROWS, Calculator, labelled
from monitoring.history import History
from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError

BOOTSTRAP = 100  # reference windows drawn per calibrated size
GRACE_SECONDS = 60  # a time window closes this long after its end: its last records land


class NoReference(FairwayError):
    """A served version whose pushing run or SavedModel cannot be found."""


class LabelError(FairwayError):
    pass


def read_labels(path: str) -> dict[str, int]:
    """request id -> 0/1 label from a CSV with the header `request_id,label`; an empty label
    is a request not labelled yet (a `fairway label-queue` file filled in part way)."""
    try:
        f = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise LabelError(f"{path}: cannot read the labels ({e.strerror})") from None
    with f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"request_id", "label"} <= set(reader.fieldnames):
            raise LabelError(f"{path}: expected a CSV with the header 'request_id,label' "
                             f"(request ids as logged: the X-Request-Id you sent, or the one "
                             f"the server answered with), got {reader.fieldnames}")
        out = {}
        for i, row in enumerate(reader, 2):
            if not (row["label"] or "").strip():
                continue
            if row["label"] not in ("0", "1"):
                raise LabelError(f"{path}:{i}: label {row['label']!r} is not 0 or 1")
            out[row["request_id"]] = int(row["label"])
    if not out:
        raise LabelError(f"{path}: no labels")
    return out


def join_labels(frame: pd.DataFrame, labels: dict[str, int], path: str) -> pd.DataFrame:
    """`_label` per logged request (NaN: not labelled yet); a label whose request id is in no
    log is an error that names it, since it usually means ids from another system."""
    unknown = sorted(set(labels) - set(frame["_request_id"]))
    if unknown:
        raise LabelError(f"{path}: {len(unknown)} of {len(labels)} request ids are in no "
                         f"request log, e.g. {', '.join(map(repr, unknown[:3]))}")
    frame = frame.copy()
    frame["_label"] = frame["_request_id"].map(labels).astype(float)
    return frame


class References:
    """One fitted calculator per served version: the reference of the run that pushed it,
    cached on disk with its calibrated thresholds (scoring the reference takes seconds, the
    bootstrap more)."""

    def __init__(self, cfg: PipelineConfig, folder: pathlib.Path, k: float, log):
        self.cfg, self.folder, self.k, self.log = cfg, folder, k, log
        self.fitted: dict[int, tuple[Calculator, Any, str]] = {}
        self.scorers: dict[int, Any] = {}
        self.files: dict[int, pathlib.Path] = {}

    def get(self, version: int) -> tuple[Calculator, Any, str]:
        if version not in self.fitted:
            from monitoring import reference

            run = metadata.pushing_run(self.cfg, version)
            if run is None:
                raise NoReference(f"no run in {self.cfg.metadata_path} pushed version "
                                   f"{version}, which served these requests: monitor with the "
                                   "--config/--baseline of the pipeline that pushed it")
            model_dir = self.cfg.model_base_dir / str(version)
            if not model_dir.is_dir():
                raise NoReference(f"{model_dir}: the pushed SavedModel of version {version} "
                                   "is gone; the monitor needs it to score the reference")
            # Keyed on what the reference depends on: the run, and the config's view of it.
            ds = self.cfg.dataset
            what = repr((run, ds.numeric, ds.categorical, ds.label, ds.sensitive, ds.groups,
                         self.cfg.evaluation.decision_threshold, BOOTSTRAP))
            cache = self.folder / f"reference-{hashlib.sha1(what.encode()).hexdigest()[:12]}" \
                                  f"-{version}.pkl"
            if cache.exists():
                ref, schema, run_id, state = pickle.loads(cache.read_bytes())
            else:
                self.log(f"reading the reference of version {version} (run {run}) ...")
                ref, schema, run_id = reference.load(self.cfg, run, str(model_dir), self.log)
                state = {}
            calc = Calculator(ref, k=self.k, bootstrap=BOOTSTRAP)
            calc.load_state(state)
            self.fitted[version] = (calc, schema, run_id)
            self.files[version] = cache
        return self.fitted[version]

    def attributions(self, version: int, frame: pd.DataFrame, schema) -> pd.DataFrame:
        """The window with the served model's attributions (`_attr:<feature>`), when the
        model exports an explanation signature and the reference has them."""
        from monitoring import reference

        calc = self.fitted[version][0]
        if not calc.attr:
            return frame
        if version not in self.scorers:
            self.scorers[version] = reference.Scorer(str(self.cfg.model_base_dir /
                                                         str(version)))
        attr = self.scorers[version].attributions(reference.to_examples(frame, schema))
        return frame if attr is None else pd.concat([frame.reset_index(drop=True), attr], axis=1)

    def save(self) -> None:
        """Keep the calibrated thresholds for the next run."""
        for version, (calc, schema, run_id) in self.fitted.items():
            path = self.files[version]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(pickle.dumps((calc.ref, schema, run_id, calc.state())))
            tmp.replace(path)


def _latest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of each window's most recent scoring, windows in time order."""
    by_window: dict[str, list[dict[str, Any]]] = {}
    for r in rows:  # oldest run first: a later scoring of a window replaces the earlier one
        if by_window.get(r["window"]) and by_window[r["window"]][0].get("scored") != \
                r.get("scored"):
            by_window[r["window"]] = []
        by_window.setdefault(r["window"], []).append(r)
    return [r for key in sorted(by_window, key=lambda k: (by_window[k][0]["start"], k))
            for r in by_window[key]]


def _alert_key(r: dict[str, Any]) -> tuple:
    return r["kind"], r["name"], r["method"]


def stats_page(cfg: PipelineConfig, window: windows.Window, schema, run_id: str) -> str:
    """The statistics view (views.stats) of a window against the training statistics of the
    run whose model served it (its StatisticsGen train split: the data the reference is drawn
    from), with the window's schema anomalies on their features. The window's statistics are
    computed as `fairway stats logs:DIR` computes them (anomalies.serving_statistics)."""
    import tensorflow_data_validation as tfdv

    from pipeline import artifacts
    from views import stats as view

    summary = metadata.run_summary(cfg, run_id)
    train = artifacts.load_stats(metadata.node_artifact(summary, "StatisticsGen",
                                                        "ExampleStatistics"), "train")
    current = anomalies.serving_statistics(window.frame, schema)
    env = "SERVING" if "SERVING" in schema.default_environment else None
    return view.page([("train", train), ("window", current)], schema,
                     {"window": tfdv.validate_statistics(current, schema, environment=env)},
                     title=f"Statistics: window {window.key} vs its reference",
                     meta={"window": f"{window.key}: {len(window.frame)} requests",
                           "reference": f"the train split of run {run_id}",
                           "model": cfg.model_name})


def stats_link(cfg: PipelineConfig, out_dir: pathlib.Path, rows: list[dict[str, Any]],
               scored_now: dict[str, tuple[windows.Window, Any, str]], log
               ) -> list[tuple[str, str]]:
    """[(text, link)] to the statistics page of the latest window, stats/<window>.html beside
    the monitor's page: written when this run scored that window, else kept from the run
    that did. A page that cannot be written is a warning, not a failed monitor run."""
    wins = page.windows(rows)
    if not wins:
        return []
    key = wins[-1]["key"]
    name = f"stats/{re.sub(r'[^A-Za-z0-9._-]+', '_', key).strip('_')}.html"
    if key in scored_now:
        try:
            text = stats_page(cfg, *scored_now[key])
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / name).write_text(text, encoding="utf-8")
        except Exception as e:  # the monitor's own outputs are written all the same
            log(f"warning: no statistics page for window {key}: {type(e).__name__}: {e}")
    if not (out_dir / name).exists():
        return []
    run_id = next((r.get("baseline_run") for r in rows if r["window"] == key), None)
    return [(f"Statistics of the latest window ({key}) vs the training data"
             + (f" of run {run_id}" if run_id else ""), name)]


def run(cfg: PipelineConfig, logs: str, out_dir: pathlib.Path, labels: str | None = None,
        window: str = "1h", since: str | None = None, until: str | None = None,
        k: float = 3.0, grace: int = GRACE_SECONDS, log: Callable[[str], None] = print,
        now: float | None = None) -> dict[str, Any]:
    spec = windows.parse(window)
    lo = windows.parse_time(since, "--since") if since else None
    hi = windows.parse_time(until, "--until") if until else None
    if k <= 0:
        raise FairwayError(f"-k {k}: expected a positive number of standard deviations")
    frame = requests.read(logs)
    if labels:
        frame = join_labels(frame, read_labels(labels), labels)
    home = cfg.command_dir("monitor") / "history"
    history = History(cfg, cfg.model_name, home)
    past = _latest(history.rows(log))
    by_window: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in past:
        by_window[r["window"]].append(r)
    scored = [windows.Scored(key, rs[0]["first_id"], rs[0]["last_id"],
                             windows.parse_time(rs[0]["end"], "end"))
              for key, rs in by_window.items()
              if rs[0].get("window_size") == str(spec) and "last_id" in rs[0]]
    cut = windows.split(frame, spec, lo, hi, now, grace, scored)

    def more_labels(w) -> bool:  # a scored window gets scored again when more labels came
        had = by_window[w.key][0].get("labelled", 0)
        return len(labelled(w.frame)) >= max(MIN_ROWS, had + 1)

    todo = [w for w in cut if w.closed and (w.key not in by_window or more_labels(w))]
    waiting = [w for w in cut if not w.closed]
    log(f"{len(frame)} logged requests in {logs}; windows of {spec}: {len(cut)} in range, "
        f"{len(todo)} to score, {len(cut) - len(todo) - len(waiting)} already scored, "
        f"{len(waiting)} still open")
    refs = References(cfg, home, k, log)
    scoring = uuid.uuid4().hex  # this run's scoring replaces earlier ones of its windows
    new: list[dict[str, Any]] = []
    unscorable: list[dict[str, str]] = []
    baseline_runs = set()
    scored_now: dict[str, tuple[windows.Window, Any, str]] = {}
    for i, w in enumerate(todo, 1):
        versions = collections.Counter(int(v) for v in w.frame["_version"])
        version = versions.most_common(1)[0][0]
        try:
            calc, schema, run_id = refs.get(version)
        except NoReference as e:  # the other windows are still scored
            log(f"warning: window {w.key} not scored: {e}")
            unscorable.append({"window": w.key, "reason": str(e)})
            continue
        baseline_runs.add(run_id)
        scored_now[w.key] = (w, schema, run_id)
        started = time.perf_counter()
        rows = calc.calculate(refs.attributions(version, w.frame, schema), w.key,
                              str(version), windows.iso(w.start), windows.iso(w.end))
        base = {k_: rows[0][k_] for k_ in ("window", "start", "end", "rows", "version")}
        for feature, text in anomalies.find(w.frame, schema).items():
            rows.append({**base, "kind": "anomaly", "name": feature, "method": "schema",
                         "value": 1.0, "threshold": None, "direction": "above",
                         "alert": True, "primary": True, "detail": text})
        # Scored again for labels: the alerts it raised before are not raised again.
        before = {_alert_key(r) for r in by_window.get(w.key, []) if r["alert"]}
        for r in rows:
            r.update(scored=scoring, window_size=str(spec), baseline_run=run_id,
                     first_id=str(w.frame["_request_id"].iloc[0]),
                     last_id=str(w.frame["_request_id"].iloc[-1]),
                     new_alert=r["alert"] and _alert_key(r) not in before)
        alerts = [r for r in rows if r["new_alert"]]
        log(f"window {i}/{len(todo)} {w.key}: {len(w.frame)} requests, "
            f"{len(alerts)} new alert(s) ({time.perf_counter() - started:.1f}s)")
        new.extend(rows)
    refs.save()
    history.record(new, {"requests": logs, "window": str(spec), "k": k})  # also a run with none
    everything = _latest(past + new)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"model": cfg.model_name, "requests": logs, "window": str(spec), "k": k,
            "baseline runs": ", ".join(sorted(baseline_runs)) or "-",
            "history": str(home)}
    links = stats_link(cfg, out_dir, everything, scored_now, log)
    (out_dir / "monitor.html").write_text(page.to_html(everything, meta=meta, links=links))
    # The exposition is the latest window that was scored (a too-small one has no scores).
    exposition.write(out_dir / "metrics.prom",
                     [r for r in everything if r["kind"] != "window"], cfg.model_name)
    report = {
        "created": windows.iso(int(time.time())), "requests": logs, "window": str(spec),
        "k": k, "examples": int(len(frame)), "baseline_runs": sorted(baseline_runs),
        "scored": sorted({r["window"] for r in new}, key=[w.key for w in todo].index),
        "unscorable": unscorable, "waiting": [
            {"window": w.key, "rows": len(w.frame), "closes": windows.iso(w.end + grace)
             if spec.seconds else f"after {spec.rows - len(w.frame)} more requests"}
            for w in waiting],
        "alerts": [r for r in new if r["new_alert"]], "rows": new,
        "history_windows": len({r["window"] for r in everything}),
    }
    (out_dir / "monitor.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def alert_lines(report: dict[str, Any]) -> list[str]:
    out = []
    for r in report["alerts"]:
        where = f"[{r['window']}] {r['kind']} {r['name']}"
        if r["kind"] == "anomaly":
            out.append(f"ANOMALY {where}: {r['detail']}")
        else:
            sign = ">" if r["direction"] == "above" else "<"
            out.append(f"ALERT {where}: {r['method']} {r['value']:.4g} {sign} threshold "
                       f"{r['threshold']:.4g}")
    return out
