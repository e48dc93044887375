"""The routing file `fairway serve --registry` follows: which versions stay loaded, which
label names which version, and how unpinned traffic splits between the labels.

The registry (release/) rewrites it after every alias change; the server re-reads it when its
contents change, so a promotion or rollback needs no restart. It is a plain JSON file next to
the Pusher's version folders, so serving still reads only files, never the metadata store:

    {"model": "census", "serial": 7, "versions": [3, 4, 5],
     "labels": {"production": 4, "canary": 5}, "fractions": {"canary": 0.05}}

Traffic (manager.route): `canary` answers a random share `fractions["canary"]`; `challenger`
answers the share `fractions["challenger"]` chosen by a hash of the request id (sticky: the same
id always lands on the same arm); `production` answers the rest; `shadow` gets a copy.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile

PRODUCTION, CANARY, CHALLENGER, SHADOW = "production", "canary", "challenger", "shadow"
SPLIT = (CANARY, CHALLENGER)  # the labels that take a share of the traffic
_LABEL = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class RoutingError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Routing:
    model: str
    versions: tuple[int, ...]  # kept loaded (every label's version, and the rollback target)
    labels: dict[str, int]
    fractions: dict[str, float]  # share of the unpinned traffic, per label in SPLIT
    serial: int = 0  # the registry's change count: a reader can tell which change it follows

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "serial": self.serial,
                           "versions": sorted(self.versions), "labels": self.labels,
                           "fractions": self.fractions}, indent=2, sort_keys=True) + "\n"


def check(r: Routing, where: str = "routing") -> Routing:
    """The invariants the server relies on; a broken file is refused, not half-applied."""
    for label, version in r.labels.items():
        if not _LABEL.fullmatch(label):
            raise RoutingError(f"{where}: label {label!r}: expected lower-case letters, digits, "
                               "- or _, starting with a letter")
        if version not in r.versions:
            raise RoutingError(f"{where}: label {label!r} names version {version}, which is "
                               f"not among the loaded versions {sorted(r.versions)}")
    for label, share in r.fractions.items():
        if label not in SPLIT:
            raise RoutingError(f"{where}: fractions: {label!r} takes no share of traffic "
                               f"(only {', '.join(SPLIT)})")
        if not 0.0 <= share <= 1.0:
            raise RoutingError(f"{where}: fractions.{label} = {share}: expected 0 to 1")
    if sum(r.fractions.get(k, 0.0) for k in SPLIT if k in r.labels) > 1.0:
        raise RoutingError(f"{where}: the canary and challenger shares add up to more than 1")
    return r


def parse(text: str, where: str = "routing") -> Routing:
    try:
        doc = json.loads(text)
        r = Routing(model=str(doc["model"]), serial=int(doc.get("serial", 0)),
                    versions=tuple(int(v) for v in doc["versions"]),
                    labels={str(k): int(v) for k, v in doc.get("labels", {}).items()},
                    fractions={str(k): float(v) for k, v in doc.get("fractions", {}).items()})
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise RoutingError(f"{where}: not a routing file ({type(e).__name__}: {e}); expected "
                           '{"model": ..., "versions": [...], "labels": {...}}') from None
    return check(r, where)


def load(path: str) -> Routing:
    with open(path) as f:
        return parse(f.read(), path)


def write(path: str, r: Routing) -> None:
    """Atomically (a reader sees the old file or the new one, never half of one)."""
    check(r, path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".routing-", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(r.to_json())
    os.replace(tmp, path)


def models_config(r: Routing, base_path: str) -> str:
    """The same mapping as a ModelServerConfig text proto, for real TF Serving (which polls it
    with --model_config_file_poll_wait_seconds; it has no traffic shares, so those stay with
    `fairway serve` or the load balancer in front)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    cfg = model_server_config_pb2.ModelServerConfig()
    m = cfg.model_config_list.config.add(name=r.model, base_path=base_path,
                                         model_platform="tensorflow")
    m.model_version_policy.specific.versions.extend(sorted(r.versions))
    for label, version in sorted(r.labels.items()):
        m.version_labels[label] = version
    return text_format.MessageToString(cfg)
