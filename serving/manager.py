"""Model lifecycle as TF Serving runs it: poll base paths, load + warm up, swap, unload.

- A base path's children named by an int64 are versions ("00000123" is 123).
- Version policies: latest{n}, all{}, specific{versions}; labels map names to versions.
- AvailabilityPreservingPolicy: a new version loads and warms up before an older one is
  unloaded, and the only available version is never unloaded.
- A failed load is retried (TF Serving: 5 retries, 60 s apart); a version folder without
  saved_model.pb is still being written and is only waited for.
"""
from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
import zlib
from typing import Callable

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import routing as routing_lib
from serving import validation as validation_lib
from serving.errors import ServingError, invalid, not_found
from serving.servable import Servable

AVAILABLE, END = "AVAILABLE", "END"
ROUTING_POLL_SECONDS = 0.2  # a rollback must reach traffic within 2 s


@dataclasses.dataclass(frozen=True)
class ModelSource:
    name: str
    base_path: str
    policy: tuple = ("latest", 1)  # ("latest", n) | ("all",) | ("specific", frozenset)
    labels: tuple = ()  # ((label, version), ...)

    def wanted(self, present: list[int]) -> set[int]:
        kind = self.policy[0]
        if kind == "latest":
            return set(sorted(present)[-self.policy[1]:])
        if kind == "all":
            return set(present)
        return set(present) & set(self.policy[1])


def parse_policy(text: str) -> tuple:
    """`latest` | `latest:N` | `all` | `specific:V1,V2` (the --version-policy flag)."""
    kind, _, arg = text.partition(":")
    try:
        if kind == "latest":
            n = int(arg or 1)
            if n >= 1:
                return ("latest", n)
        elif kind == "all" and not arg:
            return ("all",)
        elif kind == "specific" and arg:
            return ("specific", frozenset(int(v) for v in arg.split(",")))
    except ValueError:
        pass
    raise ValueError(f"version policy {text!r}: expected latest[:N], all or specific:V1,V2")


def sources_from_config(path: str) -> list[ModelSource]:
    """ModelServerConfig text proto (the models.config real TF Serving reads)."""
    try:
        with tf.io.gfile.GFile(path) as f:
            cfg = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    except (text_format.ParseError, tf.errors.OpError) as e:
        raise ValueError(f"{path}: not a ModelServerConfig text proto: {e}") from None
    return sources_from_proto(cfg, path)


def sources_from_proto(cfg, path: str = "config") -> list[ModelSource]:
    """The ModelSources of a ModelServerConfig (a file's, or HandleReloadConfigRequest's)."""
    if cfg.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: only model_config_list is supported")
    out = []
    for m in cfg.model_config_list.config:
        if m.HasField("logging_config"):  # as the stock tensorflow_model_server does
            raise ValueError(f"{path}: model {m.name!r}: No request-logger-creator provided. "
                             "(use `fairway serve --request-log-dir` instead of logging_config)")
        if m.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {m.name!r}: model_platform "
                             f"{m.model_platform!r} is not supported (only 'tensorflow')")
        p = m.model_version_policy
        kind = p.WhichOneof("policy_choice")
        policy = (("all",) if kind == "all" else
                  ("specific", frozenset(p.specific.versions)) if kind == "specific" else
                  ("latest", p.latest.num_versions or 1))
        out.append(ModelSource(m.name, m.base_path, policy,
                               tuple(sorted(m.version_labels.items()))))
    if not out:
        raise ValueError(f"{path}: model_config_list has no models")
    return out


@dataclasses.dataclass
class Version:
    number: int
    path: str
    state: str = "START"
    error_code: str = "OK"
    error_message: str = ""
    servable: Servable | None = None
    failures: int = 0
    retry_at: float = 0.0


class Model:
    def __init__(self, source: ModelSource):
        self.source = source
        # The labels asked for, and those in effect: a label moves to its new version only
        # once that version is AVAILABLE, so a switch never fails a request.
        self.desired = dict(source.labels)
        self.labels: dict[str, int] = {}
        self.fractions: dict[str, float] | None = None  # from a routing file; None: the flags
        self.versions: dict[int, Version] = {}
        self.waiting: set[str] = set()  # folders seen without saved_model.pb (logged once)

    def available(self) -> list[int]:
        return sorted(n for n, v in self.versions.items() if v.state == AVAILABLE)


class ModelManager:
    def __init__(self, sources: list[ModelSource], poll_seconds: float = 1.0,
                 max_load_retries: int = 5, retry_seconds: float = 60.0,
                 warmup: Callable[[Servable], None] | None = None, log=print,
                 canary_fraction: float = 0.0, shadow_label: str | None = None,
                 rng: random.Random | None = None,
                 validation: validation_lib.Policy | None = None):
        if len({s.name for s in sources}) != len(sources):
            raise ValueError("model names must be unique")
        self.models = {s.name: Model(s) for s in sources}
        self.poll_seconds, self.max_load_retries = poll_seconds, max_load_retries
        self.retry_seconds, self.warmup, self.log = retry_seconds, warmup, log
        self.canary_fraction, self.shadow_label = canary_fraction, shadow_label
        self.validation = validation  # --validate: each version's checks, after its warmup
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.routing_file: str | None = None
        self._routing_text: str | None = None
        for m in self.models.values():
            self._settle(m)

    # -- routing and reloads ---------------------------------------------------------------------
    def _settle(self, model: Model) -> None:
        """Labels in effect: each desired label whose version is AVAILABLE; a label whose new
        version is still loading keeps its old one meanwhile; a dropped label goes."""
        with self._lock:
            effective = {}
            for label, number in model.desired.items():
                v = model.versions.get(number)
                if v is not None and v.state == AVAILABLE:
                    effective[label] = number
                elif label in model.labels:
                    effective[label] = model.labels[label]
            changed = effective != model.labels
            model.labels = effective
        if changed:
            self.log(f"[{model.source.name}] labels now {effective}")

    def apply_routing(self, r: routing_lib.Routing) -> None:
        """Follow a routing file: load its versions, then move its labels and traffic shares."""
        model = self.models.get(r.model)
        if model is None:
            raise ValueError(f"routing is for model {r.model!r}; this server serves "
                             f"{sorted(self.models)}")
        with self._lock:
            model.source = dataclasses.replace(
                model.source, policy=("specific", frozenset(r.versions)),
                labels=tuple(sorted(r.labels.items())))
            model.desired, model.fractions = dict(r.labels), dict(r.fractions)
        self.log(f"[{r.model}] routing change {r.serial}: versions {sorted(r.versions)}, "
                 f"labels {r.labels}, shares {r.fractions}")
        self._settle(model)

    def reload(self, sources: list[ModelSource]) -> None:
        """HandleReloadConfigRequest: the new config replaces the old one (TF Serving: models
        left out are unloaded); versions load on the next poll, labels move once loaded."""
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise invalid("model names must be unique")
        with self._lock:
            for s in sources:
                m = self.models.get(s.name)
                if m is None:
                    self.models[s.name] = Model(s)
                else:
                    m.source, m.desired = s, dict(s.labels)
            for gone in set(self.models) - set(names):
                del self.models[gone]
        self.log(f"reloaded config: models {names}")
        for m in list(self.models.values()):
            self._settle(m)

    def _watch_routing(self) -> None:
        """Apply the routing file whenever its contents change (a bad file is logged, and the
        last good routing stays in effect)."""
        try:
            with open(self.routing_file) as f:
                text = f.read()
        except FileNotFoundError:
            return
        if text == self._routing_text:
            return
        self._routing_text = text
        try:
            self.apply_routing(routing_lib.parse(text, self.routing_file))
        except ValueError as e:
            self.log(f"routing file ignored: {e}")

    # -- lifecycle -------------------------------------------------------------------------------
    def _present(self, model: Model) -> dict[int, str]:
        base = model.source.base_path
        try:
            names = tf.io.gfile.listdir(base)
        except tf.errors.NotFoundError:
            if base not in model.waiting:
                model.waiting.add(base)
                self.log(f"[{model.source.name}] base path {base} does not exist (yet); "
                         "waiting for a version to appear")
            names = []
        found = {}
        for name in names:
            name = name.rstrip("/")
            try:
                number = int(name)
            except ValueError:
                continue
            path = os.path.join(base, name)
            if not (tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))
                    or tf.io.gfile.exists(os.path.join(path, "saved_model.pbtxt"))):
                if path not in model.waiting:
                    model.waiting.add(path)
                    self.log(f"[{model.source.name}] {path}: no saved_model.pb yet; waiting")
                continue
            if number >= 0 and number not in found:
                found[number] = path
        return found

    def poll_once(self) -> None:
        for model in list(self.models.values()):  # a reload may replace the dict's entries
            self._poll_model(model)

    def _poll_model(self, model: Model) -> None:
        name = model.source.name
        present = self._present(model)
        wanted = model.source.wanted(list(present))
        now = time.monotonic()
        for number in sorted(wanted, reverse=True):  # the highest wanted version first
            with self._lock:
                v = model.versions.get(number)
                if v is None or (v.state == END and v.error_code == "OK"):
                    v = model.versions[number] = Version(number, present[number])
            if v.state != "START" or v.retry_at > now:
                continue
            self._load(model, v)
        self._settle(model)
        # Availability-preserving unload: lowest unwanted first, never the only available one,
        # never one a label still answers with.
        for number in sorted(model.versions):
            v = model.versions[number]
            if number in wanted or v.state != AVAILABLE or number in model.labels.values():
                if number not in present and v.state == "START":
                    with self._lock:  # a folder removed while it was waiting for a retry
                        del model.versions[number]
                continue
            if not any(o != number and model.versions[o].state == AVAILABLE and o in wanted
                       for o in model.versions):
                continue
            with self._lock:  # a request holding the servable finishes on it
                v.servable, v.state = None, END
            self.log(f"[{name}] version {number} unloaded")

    def _load(self, model: Model, v: Version) -> None:
        name = model.source.name
        with self._lock:
            v.state = "LOADING"
        started = time.perf_counter()
        try:
            servable = Servable(name, v.number, v.path)
            if self.warmup:
                self.warmup(servable)
            if self.validation is not None:
                self.validation.attach(servable)
        except Exception as e:  # any failure of load or warmup: retry, then give up
            v.failures += 1
            message = f"{type(e).__name__}: {e}"
            with self._lock:
                if v.failures > self.max_load_retries:
                    v.state, v.error_code, v.error_message = END, "UNKNOWN", message
                else:
                    v.state, v.retry_at = "START", time.monotonic() + self.retry_seconds
            self.log(f"[{name}] version {v.number} failed to load (attempt {v.failures} of "
                     f"{self.max_load_retries + 1}): {message}")
            return
        with self._lock:
            v.servable, v.state = servable, AVAILABLE
        self.log(f"[{name}] version {v.number} AVAILABLE (loaded and warmed up in "
                 f"{time.perf_counter() - started:.1f} s)")

    def follow(self, routing_file: str) -> None:
        """Follow a routing file (`fairway serve --registry`): applied now, then re-read on
        its own fast loop, so a switch between loaded versions never waits for a load."""
        self.routing_file = routing_file
        self._watch_routing()

    def start(self) -> None:
        def loop(step: Callable[[], None], seconds: float, what: str):
            while not self._stop.wait(seconds):
                try:
                    step()
                except Exception as e:  # a listing error must not kill the poller
                    self.log(f"{what} failed: {type(e).__name__}: {e}")
        self._threads = [threading.Thread(target=loop, args=(self.poll_once, self.poll_seconds,
                                                             "poll"),
                                          name="model-poller", daemon=True)]
        if self.routing_file:
            self._threads.append(threading.Thread(
                target=loop, args=(self._watch_routing, ROUTING_POLL_SECONDS, "routing"),
                name="routing-watcher", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def wait_until_available(self, timeout: float | None = None) -> None:
        """Polls until every model has an available version (TF Serving's startup rule)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.poll_once()
            missing = [n for n, m in self.models.items() if not m.available()]
            if not missing:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no loadable version of {missing} within {timeout:.0f} s; "
                                   "see the load errors above")
            time.sleep(self.poll_seconds)

    # -- lookups ---------------------------------------------------------------------------------
    def model(self, name: str) -> Model:
        m = self.models.get(name)
        if m is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        return m

    def servable(self, name: str, version: int | None = None,
                 label: str | None = None) -> Servable:
        m = self.model(name)
        with self._lock:
            if label is not None:
                version = m.labels.get(label, m.desired.get(label))  # desired: still loading
                if version is None:
                    raise invalid(f"Unrecognized servable version label: {label}")
            if version is None:
                available = m.available()
                if not available:
                    raise not_found(f"Servable not found for request: Latest({name})")
                version = available[-1]  # "latest" is the highest available version
            v = m.versions.get(version)
            if v is None or v.state != AVAILABLE:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return v.servable

    def route(self, name: str, version: int | None = None, label: str | None = None,
              request_id: str = "") -> tuple[Servable, Servable | None]:
        """(the version that answers, the shadow that gets a copy or None).

        Pinned requests (a version or label in the URL/ModelSpec) go where they say. Others go
        to `challenger` when the request id hashes below its share (sticky: an A/B arm), else
        to `canary` with probability its share, else to `production` (or `stable`), else the
        latest. The shares come from the routing file, or --canary-fraction.
        """
        if version is not None or label is not None:
            return self.servable(name, version, label), None
        m = self.model(name)
        shares = m.fractions if m.fractions is not None else \
            {routing_lib.CANARY: self.canary_fraction}
        primary = None
        challenger = shares.get(routing_lib.CHALLENGER, 0.0)
        if challenger and routing_lib.CHALLENGER in m.labels and \
                zlib.crc32(request_id.encode()) / 2**32 < challenger:
            primary = self._try(name, routing_lib.CHALLENGER)
        canary = shares.get(routing_lib.CANARY, 0.0)
        if primary is None and canary and routing_lib.CANARY in m.labels \
                and self._rng.random() < canary:
            primary = self._try(name, routing_lib.CANARY)
        for main in (routing_lib.PRODUCTION, "stable"):
            if primary is None and main in m.labels:
                primary = self._try(name, main)
        primary = primary or self.servable(name)
        shadow_label = self.shadow_label or (routing_lib.SHADOW if m.fractions is not None
                                             else None)
        shadow = self._try(name, shadow_label) if shadow_label and shadow_label in m.labels \
            else None
        if shadow is not None and shadow.version == primary.version:
            shadow = None
        return primary, shadow

    def _try(self, name: str, label: str) -> Servable | None:
        try:
            return self.servable(name, label=label)
        except ServingError:
            return None  # an unavailable label falls back (availability first)

    def routing_state(self) -> dict:
        """GET /v1/routing: per model, the labels in effect, those asked for (a label whose
        version is still loading differs), the traffic shares and the available versions."""
        with self._lock:
            return {name: {"labels": dict(m.labels), "desired": dict(m.desired),
                           "fractions": m.fractions, "available": m.available(),
                           "routing_file": self.routing_file}
                    for name, m in self.models.items()}

    def status(self, name: str, version: int | None = None) -> list[Version]:
        m = self.models.get(name)
        if m is None or not m.versions:
            raise not_found(f"Could not find any versions of model {name}")
        with self._lock:
            if version is not None:
                if version not in m.versions:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [dataclasses.replace(m.versions[version])]
            return [dataclasses.replace(v) for _, v in sorted(m.versions.items(), reverse=True)]
