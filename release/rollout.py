"""Deployment strategies on a running `fairway serve --registry`: canary with automated
analysis (progressive steps, rolled back on a failing check), blue-green, recreate, shadow and
A/B. Every change goes through the Registry, so ML Metadata records it with who and why; the
server follows the routing file the registry rewrites.

A canary step compares what the new version and production answered during the step (the
same period for both: traffic changes over the day), or, at a 100 % step where production
answers nothing, during the whole rollout so far: Prometheus counters scraped at the start and
end (errors, latency) and the request logs (predicted probabilities, the sensitive feature,
labels when they arrive).
"""
from __future__ import annotations

import dataclasses
import glob
import html
import json
import math
import os
import pathlib
import time
import urllib.error
import urllib.request
from typing import Callable

import pandas as pd

from monitoring import monitor, requests
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError
from release import analysis
from release import registry as registry_lib
from release.analysis import FAIL, INSUFFICIENT, PASS, Row, Thresholds

STRATEGIES = ("canary", "blue-green", "recreate", "shadow", "ab")
DEFAULT_STEPS = (0.05, 0.25, 0.5, 1.0)
GREEN = registry_lib.CANDIDATE  # blue-green loads the new version under this alias first
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
SHADOW_PATTERN = "shadow-*.tfrecord"
# The alias each strategy sets for the time of the rollout only.
TEMPORARY = {"canary": registry_lib.CANARY, "shadow": registry_lib.SHADOW,
             "ab": registry_lib.CHALLENGER, "blue-green": GREEN}
# Traffic checks a step cannot pass without (label checks are reported when labels exist).
REQUIRED = ("error rate", "p99 latency", "prediction shift")


class RolloutError(FairwayError):
    pass


@dataclasses.dataclass
class Options:
    version: int
    strategy: str = "canary"
    steps: tuple[float, ...] = DEFAULT_STEPS
    step_seconds: float = 60.0
    step_timeout: float | None = None  # default: 5 x step_seconds, at least 60 s
    min_requests: int = 100
    labels: str | None = None
    server: str = "http://127.0.0.1:8501"
    logs: str | None = None
    to: str | None = None
    force: bool = False
    promote_winner: bool = False
    by: str | None = None
    poll_seconds: float = 1.0
    load_timeout: float = 300.0  # for the new version to become AVAILABLE

    def thresholds(self) -> Thresholds:
        n = self.min_requests
        return Thresholds(min_requests=n, min_rows=n, min_group_rows=max(10, n // 2))

    @property
    def timeout(self) -> float:
        return self.step_timeout if self.step_timeout is not None \
            else max(60.0, 5 * self.step_seconds)


@dataclasses.dataclass
class Step:
    name: str
    fraction: float | None
    started: float
    ended: float
    rows: list[Row]
    verdict: str  # pass | fail | insufficient
    reasons: list[str]

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rows": [r.as_dict() for r in self.rows]}


@dataclasses.dataclass
class Result:
    version: int
    production: int | None
    strategy: str
    decision: str  # promoted | rolled back | completed
    reasons: list[str]
    steps: list[Step]
    changes: list[dict]
    report: list[str] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.decision == "rolled back" else 0


class Server:
    """What the rollout reads from the running server (REST, loopback or wherever --server
    points)."""

    def __init__(self, url: str, model: str):
        self.url, self.model = url.rstrip("/"), model

    def _get(self, path: str) -> bytes:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                return r.read()
        except (urllib.error.URLError, OSError) as e:
            raise RolloutError(f"server {self.url}: GET {path} failed ({e}); is `fairway serve "
                               "--registry` running there (--server URL)?") from None

    def metrics(self) -> analysis.Scrape:
        return analysis.parse_metrics(self._get(PROMETHEUS_PATH).decode(), self.model)

    def states(self) -> dict[int, str]:
        """Version -> state (AVAILABLE once loaded) from GET /v1/models/<name>."""
        doc = json.loads(self._get(f"/v1/models/{self.model}"))
        return {int(v["version"]): v["state"] for v in doc.get("model_version_status", [])}

    def labels(self) -> dict[str, int] | None:
        """Labels in effect (GET /v1/routing), or None when the server does not say."""
        try:
            doc = json.loads(self._get("/v1/routing"))
        except (RolloutError, ValueError):
            return None
        labels = doc.get(self.model, {}).get("labels")
        return {k: int(v) for k, v in labels.items()} if labels is not None else None


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Rollout:
    def __init__(self, cfg: PipelineConfig, opts: Options, *, registry=None, server=None,
                 log: Callable[[str], None] = lambda s: print(s, flush=True)):
        if opts.strategy not in STRATEGIES:
            raise RolloutError(f"strategy {opts.strategy!r}: expected one of "
                               f"{', '.join(STRATEGIES)}")
        if opts.strategy in ("canary", "shadow", "ab") and not opts.logs:
            log(f"rollout: no --logs DIR: the {opts.strategy} analysis has only the server's "
                "error and latency counters, no prediction checks")
        if opts.logs and not os.path.isdir(opts.logs):
            raise RolloutError(f"--logs {opts.logs}: no such folder (the server's "
                               "--request-log-dir)")
        if opts.labels and not os.path.isfile(opts.labels):
            raise RolloutError(f"--labels {opts.labels}: no such file")
        self.cfg, self.opts, self.log = cfg, opts, log
        self.th = opts.thresholds()
        self.registry = registry or registry_lib.Registry(cfg)
        self.server = server or Server(opts.server, cfg.model_name)
        self.changes: list[dict] = []
        self.sensitive = cfg.dataset.sensitive
        self.groups = tuple(cfg.dataset.groups)
        self.started = time.time()

    # -- registry ----------------------------------------------------------------------------
    def _by(self) -> str:
        return self.opts.by or f"fairway rollout ({self.opts.strategy})"

    def _change(self, fn, *args, **kwargs):
        change = fn(*args, by=self._by(), **kwargs)
        self.changes.append(change.to_dict())
        return change

    def _promote(self, alias: str, reason: str, fraction: float | None = None):
        return self._change(self.registry.promote, self.opts.version, alias, reason=reason,
                            force=self.opts.force, fraction=fraction)

    def _remove(self, alias: str, reason: str) -> None:
        if alias in self.registry.aliases():
            self._change(self.registry.remove, alias, reason=reason)

    # -- server ------------------------------------------------------------------------------
    def _wait_serving(self, alias: str) -> None:
        """Until the version is AVAILABLE and the server routes `alias` to it."""
        v, deadline = self.opts.version, time.monotonic() + self.opts.load_timeout
        last = 0.0
        while True:
            state = self.server.states().get(v, "not listed")
            labels = self.server.labels()
            if state == "AVAILABLE" and (labels is None or labels.get(alias) == v):
                if labels is None:
                    time.sleep(1.0)  # the routing file is applied within ~0.5 s
                return
            if time.monotonic() > deadline:
                raise RolloutError(f"version {v} is not serving as {alias!r} after "
                                   f"{self.opts.load_timeout:g} s (state {state}; labels in "
                                   f"effect {labels}); see the server's log")
            if time.monotonic() - last > 5:
                self.log(f"  waiting for version {v} to serve as {alias!r} (state {state})")
                last = time.monotonic()
            time.sleep(self.opts.poll_seconds / 2)

    def _frame(self, shadow: bool = False) -> pd.DataFrame:
        """The request logs (or shadow logs) with labels joined when --labels is given; empty
        when there are none yet. A file being written may end in a partial record: retried."""
        if not self.opts.logs:
            return pd.DataFrame()
        pattern = SHADOW_PATTERN if shadow else requests.PATTERN
        files = sorted(glob.glob(os.path.join(self.opts.logs, "**", pattern), recursive=True))
        if not files:
            return pd.DataFrame()
        for attempt in range(5):
            try:
                frame = pd.concat([requests.read(f) for f in files if os.path.getsize(f)],
                                  ignore_index=True)
                break
            except ValueError:  # nothing to concatenate: every file is still empty
                return pd.DataFrame()
            except requests.RequestLogError as e:
                if "hold no requests" in str(e):
                    return pd.DataFrame()
                if attempt == 4:  # a partial last record is finished within a flush
                    raise
                time.sleep(0.5)
        if self.opts.labels and not shadow:
            try:
                labels = monitor.read_labels(self.opts.labels)
            except monitor.LabelError as e:
                if not str(e).endswith(": no labels"):
                    raise
                labels = {}  # none arrived yet
            # Labels of requests outside these logs (older ones, other servers) do not count.
            known = set(frame["_request_id"])
            frame = monitor.join_labels(frame, {k: v for k, v in labels.items() if k in known},
                                        self.opts.labels)
        return frame

    # -- canary analysis ---------------------------------------------------------------------
    def _window(self, start: analysis.Scrape, step_start: analysis.Scrape, began: float,
                fraction: float | None) -> tuple[analysis.Scrape, float]:
        """Where the step's evidence starts (a Prometheus scrape and a time): the step itself,
        so both arms share the same period (traffic changes over the day); at a 100 % step,
        where production answers nothing, the whole rollout so far for both arms."""
        if fraction is not None and fraction >= 1.0:
            return start, self.started
        return step_start, began

    @staticmethod
    def _arms(frame: pd.DataFrame, canary: int, production: int, since: float,
              align: bool = True):
        """Each arm's logged rows since `since`. `align`: both arms end at the earlier of their
        last logged rows, so they cover the same period even when one version's request log
        is flushed later (the traffic's rows change over time, and a stretch seen by one arm
        only would show as a prediction shift). Not at a 100 % step, where production has
        stopped answering."""
        c, p = analysis.arm(frame, canary, since), analysis.arm(frame, production, since)
        if align and len(c) and len(p):
            until = min(c["_time"].max(), p["_time"].max())
            c, p = c[c["_time"] <= until], p[p["_time"] <= until]
        return c, p

    def _ready(self, c_req: int, p_req: int, c_rows: pd.DataFrame, p_rows: pd.DataFrame
               ) -> tuple[bool, str]:
        th = self.th
        parts = [f"{c_req} canary / {p_req} production requests"]
        ok = c_req >= th.min_requests and p_req >= th.min_requests
        if self.opts.logs:
            parts.append(f"{len(c_rows)} / {len(p_rows)} logged")
            ok &= len(c_rows) >= th.min_rows and len(p_rows) >= th.min_rows
            if self.sensitive and self.groups:
                sizes = []
                for g in self.groups:
                    nc = int((c_rows.get(self.sensitive, pd.Series(dtype=str)).astype(str)
                              == g).sum())
                    np_ = int((p_rows.get(self.sensitive, pd.Series(dtype=str)).astype(str)
                               == g).sum())
                    sizes.append(f"{g} {nc}/{np_}")
                    ok &= min(nc, np_) >= th.min_group_rows
                parts.append(", ".join(sizes))
        return ok, "; ".join(parts)

    def analyse(self, base: analysis.Scrape, end: analysis.Scrape, frame: pd.DataFrame,
                canary: int, production: int, since: float, align: bool = True) -> list[Row]:
        delta = end - base
        rows = [analysis.error_rate(analysis.counts(delta, canary),
                                    analysis.counts(delta, production), self.th),
                analysis.latency(delta.latency.get(str(canary), {}),
                                 delta.latency.get(str(production), {}), self.th)]
        if self.opts.logs:
            c, p = self._arms(frame, canary, production, since, align)
            rows += analysis.prediction_checks(c, p, self.th, self.sensitive, self.groups)
        return analysis.bonferroni(rows, self.th.alpha)[0]

    def _verdict(self, rows: list[Row]) -> tuple[str, list[str]]:
        """fail on any failing check; insufficient when a traffic check lacked data."""
        failed = analysis.failures(rows)
        if failed:
            return FAIL, [r.reason for r in failed]
        short = [r for r in rows if r.verdict == INSUFFICIENT
                 and r.check.startswith(REQUIRED)]
        if short:
            return INSUFFICIENT, [r.reason for r in short]
        return PASS, []

    def _step(self, name: str, fraction: float | None, canary: int, production: int,
              start: analysis.Scrape) -> Step:
        """Wait for the step's traffic (step_seconds at least, enough per arm, the timeout at
        most), then analyse it."""
        began = time.time()
        base, since = self._window(start, self.server.metrics(), began, fraction)
        align = fraction is None or fraction < 1.0
        t0, last = time.monotonic(), 0.0
        frame = pd.DataFrame()
        while True:
            end = self.server.metrics()
            delta = end - base
            c_req, p_req = (analysis.counts(delta, v)[0] for v in (canary, production))
            frame = self._frame()
            c_rows, p_rows = self._arms(frame, canary, production, since, align)
            ready, status = self._ready(c_req, p_req, c_rows, p_rows)
            elapsed = time.monotonic() - t0
            if (ready and elapsed >= self.opts.step_seconds) or elapsed >= self.opts.timeout:
                break
            if time.monotonic() - last >= 5:
                self.log(f"  [{name}] {elapsed:.0f} s: {status}")
                last = time.monotonic()
            time.sleep(self.opts.poll_seconds)
        self.log(f"  [{name}] {elapsed:.0f} s: {status}; analysing")
        rows = self.analyse(base, end, frame, canary, production, since, align)
        verdict, reasons = self._verdict(rows)
        if verdict == INSUFFICIENT:
            reasons = [f"not enough traffic in {elapsed:.0f} s (timeout "
                       f"{self.opts.timeout:g} s): {status}"] + reasons
        self._show(rows, "canary")
        return Step(name, fraction, began, time.time(), rows, verdict, reasons)

    def _show(self, rows: list[Row], arm: str) -> None:
        for r in rows:
            self.log(f"    {r.verdict:12s} {r.check}: {arm} {_fmt(r.canary)}, production "
                     f"{_fmt(r.production)} (n {r.n_canary}/{r.n_production}, p "
                     f"{analysis._p(r.p_value)}{', ' + r.statistic if r.statistic else ''})")

    # -- strategies --------------------------------------------------------------------------
    def _production(self) -> int:
        prod = self.registry.aliases().get(registry_lib.PRODUCTION)
        if prod is None:
            raise RolloutError("no version holds 'production' yet: nothing to compare with; "
                               f"start with `fairway rollout {self.opts.version} --strategy "
                               "recreate` (or `fairway models promote`)")
        if prod == self.opts.version:
            raise RolloutError(f"version {prod} already holds 'production'")
        return prod

    def canary(self) -> Result:
        v, prod = self.opts.version, self._production()
        steps, start = [], self.server.metrics()
        self.started = time.time()
        for f in self.opts.steps:
            name = f"canary {f:.0%}"
            self.log(f"rollout: {name}: version {v} (production {prod})")
            self._promote(registry_lib.CANARY, f"canary step {f:.0%} of "
                          f"{','.join(f'{s:.0%}' for s in self.opts.steps)}", fraction=f)
            self._wait_serving(registry_lib.CANARY)
            step = self._step(name, f, v, prod, start)
            steps.append(step)
            if step.verdict != PASS:
                why = f"{name}: " + "; ".join(step.reasons)
                self._remove(registry_lib.CANARY, f"rolled back: {why}"[:2000])
                return self._result(prod, "rolled back", [why], steps)
        self._change(self.registry.promote, v, registry_lib.PRODUCTION, force=self.opts.force,
                     reason=f"canary passed {len(steps)} steps "
                            f"({', '.join(s.name for s in steps)})")
        self._remove(registry_lib.CANARY, f"version {v} promoted to production")
        return self._result(prod, "promoted", [f"every check passed at {len(steps)} steps"],
                            steps)

    def blue_green(self) -> Result:
        v, prod = self.opts.version, self.registry.aliases().get(registry_lib.PRODUCTION)
        self.log(f"rollout: blue-green: loading version {v} as {GREEN!r} next to production "
                 f"({prod})")
        self._promote(GREEN, "blue-green: load next to production")
        t = time.time()
        self._wait_serving(GREEN)
        self.log(f"  version {v} AVAILABLE after {time.time() - t:.1f} s; switching production")
        self._promote(registry_lib.PRODUCTION, f"blue-green switch from {prod} (loaded and "
                      "available beforehand)")
        self._wait_serving(registry_lib.PRODUCTION)
        self._remove(GREEN, "blue-green: switched")
        return self._result(prod, "promoted", [f"switched production {prod} -> {v}; {prod} "
                                               "stays loaded for `fairway rollback`"], [])

    def recreate(self) -> Result:
        prod = self.registry.aliases().get(registry_lib.PRODUCTION)
        self.log(f"rollout: recreate: production {prod} -> {self.opts.version}")
        self._promote(registry_lib.PRODUCTION, "recreate: switched directly")
        self._wait_serving(registry_lib.PRODUCTION)
        return self._result(prod, "promoted", [f"production {prod} -> {self.opts.version}"], [])

    def shadow(self) -> Result:
        v, prod = self.opts.version, self._production()
        if not self.opts.logs:
            raise RolloutError("--strategy shadow compares the shadow's logged answers with "
                               "production's: give the server's --request-log-dir as --logs")
        self.log(f"rollout: shadow: version {v} gets a copy of production's ({prod}) traffic "
                 f"for {self.opts.step_seconds:g} s")
        self._promote(registry_lib.SHADOW, f"shadow for {self.opts.step_seconds:g} s")
        self._wait_serving(registry_lib.SHADOW)
        start, began = self.server.metrics(), time.time()  # both arms from here on
        t0, last = time.monotonic(), 0.0
        while time.monotonic() - t0 < self.opts.step_seconds:
            if time.monotonic() - last >= 5:
                n, _ = analysis.counts(self.server.metrics() - start, v, shadow=True)
                self.log(f"  [shadow] {time.monotonic() - t0:.0f} s: {n} copies answered")
                last = time.monotonic()
            time.sleep(self.opts.poll_seconds)
        time.sleep(1.0)  # the last copies are answered in the background
        end = self.server.metrics()
        self._remove(registry_lib.SHADOW, "shadow comparison done")
        whole = end - start
        rows = [analysis.error_rate(analysis.counts(whole, v, shadow=True),
                                    analysis.counts(whole, prod), self.th, "shadow error rate")]
        shadow = analysis.arm(self._frame(shadow=True), v, began)
        production = analysis.arm(self._frame(), prod, began)
        rows += analysis.paired_checks(shadow, production, self.th, self.sensitive,
                                       self.groups)
        rows, _ = analysis.bonferroni(rows, self.th.alpha)
        verdict, reasons = self._verdict(rows)
        step = Step("shadow", None, began, time.time(), rows, verdict, reasons)
        self._show(rows, "shadow")
        why = reasons or ["every check passed (no promotion: shadow only compares)"]
        return self._result(prod, "completed", why, [step])

    def ab(self) -> Result:
        v, prod = self.opts.version, self._production()
        self.log(f"rollout: A/B: version {v} as 'challenger' on half the request ids "
                 f"(sticky), production {prod}")
        self._promote(registry_lib.CHALLENGER, "A/B test", fraction=0.5)
        self._wait_serving(registry_lib.CHALLENGER)
        start, began = self.server.metrics(), time.time()  # both arms from here on
        t0, last = time.monotonic(), 0.0
        while True:
            elapsed = time.monotonic() - t0
            frame = self._frame()
            b, a = analysis.arm(frame, v, began), analysis.arm(frame, prod, began)
            lab = [int(x["_label"].notna().sum()) if "_label" in x else 0 for x in (b, a)]
            ready = min(lab) >= self.th.min_labelled if self.opts.labels else True
            if (ready and elapsed >= self.opts.step_seconds) or elapsed >= self.opts.timeout:
                break
            if time.monotonic() - last >= 5:
                self.log(f"  [A/B] {elapsed:.0f} s: {len(b)} / {len(a)} logged, labelled "
                         f"{lab[0]} / {lab[1]}")
                last = time.monotonic()
            time.sleep(self.opts.poll_seconds)
        end = self.server.metrics()
        whole = end - start
        rows = [analysis.error_rate(analysis.counts(whole, v), analysis.counts(whole, prod),
                                    self.th)]
        if self.opts.logs:
            rows += analysis.prediction_checks(b, a, self.th, self.sensitive, self.groups)
            if "_label" in b:
                rows.append(analysis.accuracy(b, a, self.th))
                rows.append(analysis.auc(b, a, self.th, alternative="two-sided",
                                         name="AUC (two-sided)"))
        rows, alpha = analysis.bonferroni(rows, self.th.alpha)
        verdict, reasons = self._verdict(rows)
        self._show(rows, "challenger")
        step = Step("A/B", 0.5, began, time.time(), rows, verdict, reasons)
        winner = self._winner(rows, alpha)
        if self.opts.promote_winner and winner == v and verdict == PASS:
            self._change(self.registry.promote, v, registry_lib.PRODUCTION,
                         force=self.opts.force, reason="A/B winner: " + self._why(rows))
            self._remove(registry_lib.CHALLENGER, f"version {v} won the A/B test")
            return self._result(prod, "promoted", [f"challenger {v} won: " + self._why(rows)],
                                [step])
        self._remove(registry_lib.CHALLENGER, "A/B test done")
        why = reasons or ([f"challenger {v} is better: {self._why(rows)} (not promoted: "
                           "--promote-winner not given)"] if winner == v else
                          ["no significant winner; production kept"])
        return self._result(prod, "rolled back" if verdict == FAIL else "completed", why,
                            [step])

    def _winner(self, rows: list[Row], alpha: float) -> int | None:
        """The challenger wins when its accuracy or AUC is significantly higher (at the
        per-check level) and neither is significantly lower."""
        labelled = [r for r in rows if r.check in ("accuracy", "AUC (two-sided)")
                    and r.verdict != INSUFFICIENT]
        better = [r for r in labelled if r.p_value < alpha and r.canary > r.production]
        worse = [r for r in labelled if r.p_value < alpha and r.canary < r.production]
        return self.opts.version if better and not worse else None

    def _why(self, rows: list[Row]) -> str:
        return "; ".join(f"{r.check} {_fmt(r.canary)} vs {_fmt(r.production)} (p "
                         f"{analysis._p(r.p_value)})" for r in rows
                         if r.check in ("accuracy", "AUC (two-sided)"))

    def run(self) -> Result:
        fn = {"canary": self.canary, "blue-green": self.blue_green, "recreate": self.recreate,
              "shadow": self.shadow, "ab": self.ab}[self.opts.strategy]
        self.registry.version(self.opts.version)  # an unknown version fails before any change
        alias = TEMPORARY.get(self.opts.strategy)
        held = self.registry.aliases().get(alias) if alias else None
        if held is not None and held != self.opts.version:
            raise RolloutError(f"alias {alias!r} is held by version {held} (another rollout "
                               "running, or one that was stopped?); remove it through the "
                               "registry first")
        try:
            result = fn()
        except BaseException as e:
            # Stopped half way (Ctrl-C, the server gone, a version that never loads): the
            # temporary alias goes, so no user keeps being answered by an unjudged version.
            if alias and self.registry.aliases().get(alias) == self.opts.version:
                why = f"rollout stopped: {type(e).__name__}: {e}"[:500]
                self._remove(alias, why)
                self.log(f"rollout: {alias!r} removed ({why})")
            raise
        result.report = [str(p) for p in write_report(result, self._folder())]
        return result

    def _folder(self) -> pathlib.Path:
        return pathlib.Path(self.opts.to) if self.opts.to else self.cfg.command_dir("rollout")

    def _result(self, production, decision, reasons, steps) -> Result:
        return Result(self.opts.version, production, self.opts.strategy, decision, reasons,
                      steps, self.changes)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# -- report -------------------------------------------------------------------------------------

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left}th{background:#f3f3f3}.pass{color:#17692f}.fail{color:#b00020;font-weight:bold}
.insufficient{color:#8a6d00}.decision{font-size:1.3em}"""


def write_report(result: Result, folder: pathlib.Path) -> list[pathlib.Path]:
    """`rollout-<version>-<UTC time>.json` and `.html` (self-contained: no scripts, no
    network)."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = folder / f"rollout-{result.version}-{stamp}"
    n = 1
    while base.with_suffix(".json").exists():  # two rollouts of a version in one second
        n += 1
        base = folder / f"rollout-{result.version}-{stamp}-{n}"
    doc = {"version": result.version, "production": result.production,
           "strategy": result.strategy, "decision": result.decision,
           "reasons": result.reasons, "steps": [s.as_dict() for s in result.steps],
           "changes": result.changes, "utc": stamp}
    base.with_suffix(".json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>rollout of version "
           f"{result.version}</title><style>{_CSS}</style></head><body>",
           f"<h1>Rollout of version {result.version} ({e(result.strategy)})</h1>",
           f"<p class='decision'>Decision: <b class='{'fail' if result.exit_code else 'pass'}'>"
           f"{e(result.decision)}</b> (production was {result.production})</p><ul>",
           *[f"<li>{e(r)}</li>" for r in result.reasons], "</ul>"]
    for s in result.steps:
        out.append(f"<h2>{e(s.name)}: <span class='{s.verdict}'>{s.verdict}</span></h2>"
                   f"<p>{_utc(s.started)} – {_utc(s.ended)}</p><table><tr><th>check</th>"
                   "<th>canary</th><th>production</th><th>n canary</th><th>n production</th>"
                   "<th>p-value</th><th>statistic</th><th>fails at</th><th>verdict</th></tr>")
        for r in s.rows:
            out.append(f"<tr><td>{e(r.check)}</td><td>{_fmt(r.canary)}</td>"
                       f"<td>{_fmt(r.production)}</td><td>{r.n_canary}</td>"
                       f"<td>{r.n_production}</td><td>{analysis._p(r.p_value)}</td>"
                       f"<td>{e(r.statistic)}</td><td>{e(r.threshold)}</td>"
                       f"<td class='{r.verdict}'>{r.verdict}</td></tr>")
        out.append("</table>")
        if s.reasons:
            out.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in s.reasons) + "</ul>")
    out.append("<h2>Registry changes</h2><table><tr><th>UTC</th><th>alias</th><th>action</th>"
               "<th>version</th><th>fraction</th><th>by</th><th>reason</th></tr>")
    for c in result.changes:
        out.append(f"<tr><td>{e(str(c.get('utc', '')))}</td><td>{e(str(c['alias']))}</td>"
                   f"<td>{e(str(c['action']))}</td><td>{c['version']}</td>"
                   f"<td>{_fmt(c.get('fraction'))}</td><td>{e(str(c['by']))}</td>"
                   f"<td>{e(str(c['reason']))}</td></tr>")
    out.append("</table></body></html>")
    base.with_suffix(".html").write_text("\n".join(out))
    return [base.with_suffix(".json"), base.with_suffix(".html")]


def parse_steps(text: str) -> tuple[float, ...]:
    """"5,25,50,100" -> (0.05, 0.25, 0.5, 1.0): increasing percentages ending at 100."""
    try:
        steps = tuple(float(s) / 100 for s in text.split(",") if s.strip())
    except ValueError:
        raise RolloutError(f"--steps {text!r}: expected percentages like 5,25,50,100") \
            from None
    if not steps or any(not 0 < s <= 1 for s in steps) or list(steps) != sorted(set(steps)) \
            or steps[-1] != 1.0:
        raise RolloutError(f"--steps {text!r}: expected increasing percentages above 0, "
                           "ending at 100 (e.g. 5,25,50,100)")
    return steps
