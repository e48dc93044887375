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
from typing import Callable

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingError, invalid, not_found
from serving.servable import Servable

AVAILABLE, END = "AVAILABLE", "END"


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
        self.labels = dict(source.labels)
        self.versions: dict[int, Version] = {}
        self.waiting: set[str] = set()  # folders seen without saved_model.pb (logged once)

    def available(self) -> list[int]:
        return sorted(n for n, v in self.versions.items() if v.state == AVAILABLE)


class ModelManager:
    def __init__(self, sources: list[ModelSource], poll_seconds: float = 1.0,
                 max_load_retries: int = 5, retry_seconds: float = 60.0,
                 warmup: Callable[[Servable], None] | None = None, log=print,
                 canary_fraction: float = 0.0, shadow_label: str | None = None,
                 rng: random.Random | None = None):
        if len({s.name for s in sources}) != len(sources):
            raise ValueError("model names must be unique")
        self.models = {s.name: Model(s) for s in sources}
        self.poll_seconds, self.max_load_retries = poll_seconds, max_load_retries
        self.retry_seconds, self.warmup, self.log = retry_seconds, warmup, log
        self.canary_fraction, self.shadow_label = canary_fraction, shadow_label
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        for model in self.models.values():
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
        # Availability-preserving unload: lowest unwanted first, never the only available one.
        for number in sorted(model.versions):
            v = model.versions[number]
            if number in wanted or v.state != AVAILABLE:
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

    def start(self) -> None:
        def loop():
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.poll_once()
                except Exception as e:  # a listing error must not kill the poller
                    self.log(f"poll failed: {type(e).__name__}: {e}")
        self._thread = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

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
                if label not in m.labels:
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = m.labels[label]
            if version is None:
                available = m.available()
                if not available:
                    raise not_found(f"Servable not found for request: Latest({name})")
                version = available[-1]  # "latest" is the highest available version
            v = m.versions.get(version)
            if v is None or v.state != AVAILABLE:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return v.servable

    def route(self, name: str, version: int | None = None, label: str | None = None
              ) -> tuple[Servable, Servable | None]:
        """(the version that answers, the shadow that gets a copy or None).

        Pinned requests (a version or label in the URL/ModelSpec) go where they say. Others go
        to the `canary` label with probability canary_fraction, else `stable`, else the latest.
        """
        if version is not None or label is not None:
            return self.servable(name, version, label), None
        m = self.model(name)
        primary = None
        if self.canary_fraction and "canary" in m.labels \
                and self._rng.random() < self.canary_fraction:
            primary = self._try(name, "canary")
        if primary is None and "stable" in m.labels:
            primary = self._try(name, "stable")
        primary = primary or self.servable(name)
        shadow = self._try(name, self.shadow_label) if self.shadow_label else None
        if shadow is not None and shadow.version == primary.version:
            shadow = None
        return primary, shadow

    def _try(self, name: str, label: str) -> Servable | None:
        try:
            return self.servable(name, label=label)
        except ServingError:
            return None  # an unavailable label falls back (availability first)

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
