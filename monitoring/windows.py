"""Serving traffic cut into windows: by time (`1h`, aligned to multiples of it in UTC) or by
count (`5000` requests in arrival order)."""
from __future__ import annotations

import dataclasses
import datetime
import re
import time

import pandas as pd

from pipeline.errors import FairwayError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclasses.dataclass(frozen=True)
class Spec:
    seconds: int = 0  # a time window, or
    rows: int = 0  # a count window

    def __str__(self) -> str:
        return f"{self.rows} rows" if self.rows else _duration(self.seconds)


@dataclasses.dataclass
class Window:
    key: str  # stable across runs: what the history dedupes on
    start: int  # UTC seconds (time windows: the window's bounds; count: first/last request)
    end: int
    frame: pd.DataFrame
    closed: bool  # a time window still open, or a count window not yet full, waits


def parse(text: str) -> Spec:
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text or "")
    if not m or int(m.group(1)) == 0:
        raise FairwayError(f"--window {text!r}: expected a duration like 30m, 1h, 1d (s, m, h, "
                           "d) or a number of requests like 5000")
    n, unit = int(m.group(1)), m.group(2)
    return Spec(seconds=n * _UNITS[unit]) if unit else Spec(rows=n)


def parse_time(text: str, flag: str) -> int:
    """UTC seconds of an ISO-8601 date or date-time (UTC unless it carries an offset)."""
    try:
        t = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FairwayError(f"{flag} {text!r}: expected an ISO-8601 date or time, e.g. "
                           "2026-11-30 or 2026-11-30T14:00:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp())


def iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _duration(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclasses.dataclass(frozen=True)
class Scored:
    """A count window already in the history: its key and the ids of its first and last
    requests."""
    key: str
    first: str
    last: str
    end: int


def split(frame: pd.DataFrame, spec: Spec, since: int | None = None, until: int | None = None,
          now: float | None = None, grace: int = 0, scored: list[Scored] = ()
          ) -> list[Window]:
    """The windows of `frame` (rows in arrival order with `_time`).

    Time windows: every window within [since, until), closed once `grace` seconds have passed
    after its end (the server writes its last records a moment after they arrive).
    Count windows: the scored ones again (found by their first and last request, so that late
    labels can be joined), then new ones from the requests after the last scored one, within
    [since, until); a count window not yet full waits."""
    now = time.time() if now is None else now
    if spec.seconds:
        out = []
        start_of = frame["_time"] // spec.seconds * spec.seconds
        for start, part in frame.groupby(start_of, sort=True):
            start = int(start)
            end = start + spec.seconds
            if (since is not None and start < since) or (until is not None and end > until):
                continue  # only whole windows: a cut one would be stored under a full key
            out.append(Window(f"{iso(start)}/{spec}", start, end, part.reset_index(drop=True),
                              closed=end + grace <= now))
        return out
    ids = frame["_request_id"].to_numpy()
    position = {rid: i for i, rid in enumerate(ids)}
    out, after = [], -1
    for s in scored:
        if s.first in position and s.last in position:
            part = frame.iloc[position[s.first]:position[s.last] + 1].reset_index(drop=True)
            out.append(Window(s.key, int(part["_time"].iloc[0]), int(part["_time"].iloc[-1]),
                              part, closed=True))
            after = max(after, position[s.last])
    if scored and after < 0:  # the scored requests' logs are gone: continue after their time
        rest = frame[frame["_time"] > max(s.end for s in scored)]
    else:
        rest = frame.iloc[after + 1:]
    if since is not None:
        rest = rest[rest["_time"] >= since]
    if until is not None:
        rest = rest[rest["_time"] < until]
    for i in range(0, len(rest), spec.rows):
        part = rest.iloc[i:i + spec.rows].reset_index(drop=True)
        out.append(Window(f"{spec.rows} from {part['_request_id'].iloc[0]}",
                          int(part["_time"].iloc[0]), int(part["_time"].iloc[-1]), part,
                          closed=len(part) == spec.rows))
    return out
