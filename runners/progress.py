"""Per-component progress lines (i/N, elapsed) from LocalDagRunner's own log records."""
from __future__ import annotations

import logging
import pathlib
import re
import sys
import time

import absl.logging

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_CACHED = re.compile(r"A cached execution \d+ is used\.")


class Progress(logging.Handler):
    """Prints `[i/N] Node ... done in Xs (cached)` as LocalDagRunner logs each node."""

    def __init__(self, node_ids: list[str], log_file: pathlib.Path, out=None):
        super().__init__(level=logging.INFO)
        self.node_ids, self.out, self.log_file = node_ids, out, log_file
        self._saved: list[tuple[logging.Handler, int]] = []
        self.start = self.node_start = time.monotonic()
        self.current, self.cached, self.done = None, False, []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if m := _RUNNING.search(msg):
            self.current, self.cached, self.node_start = m.group(1), False, time.monotonic()
            i = self.node_ids.index(self.current) + 1 if self.current in self.node_ids else "?"
            self._print(f"[{i}/{len(self.node_ids)}] {self.current} ...")
        elif _CACHED.search(msg):
            self.cached = True
        elif m := _FINISHED.search(msg):
            now = time.monotonic()
            self.done.append(m.group(1))
            self._print(f"      {m.group(1)} done in {now - self.node_start:.1f}s"
                        f"{' (cached)' if self.cached else ''}; elapsed {now - self.start:.1f}s")

    def _print(self, line: str) -> None:
        print(line, file=self.out or sys.stdout, flush=True)  # sys.stdout as of now

    def __enter__(self):
        """TFX's INFO logs go to the log file; the console keeps warnings and progress."""
        root = logging.getLogger()
        self._saved = [(h, h.level) for name in ("", "tensorflow")
                       for h in logging.getLogger(name).handlers]
        for h, _ in self._saved:
            h.setLevel(max(h.level, logging.WARNING))
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._file = logging.FileHandler(self.log_file)
        self._file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._root_level = root.level
        root.setLevel(logging.INFO)
        # Through absl's flag, not the logger: TF's SavedModel export restores absl's verbosity
        # from the flag, which would silently drop the INFO records progress is read from.
        self._absl_verbosity = absl.logging.get_verbosity()
        absl.logging.set_verbosity(absl.logging.INFO)
        root.addHandler(self._file)
        root.addHandler(self)
        self._print(f"Detailed log: {self.log_file}")
        return self

    def __exit__(self, *exc):
        root = logging.getLogger()
        root.removeHandler(self)
        root.removeHandler(self._file)
        self._file.close()
        root.setLevel(self._root_level)
        absl.logging.set_verbosity(self._absl_verbosity)
        for h, level in self._saved:
            h.setLevel(level)
