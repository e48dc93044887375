"""Per-component progress lines (i/N, elapsed) from LocalDagRunner's own log records, and a quiet
console: during a run everything else (TF/absl/Beam logs, Python warnings, TensorFlow's native
stderr) goes to the run's log file."""
from __future__ import annotations

import logging
import os
import pathlib
import re
import sys
import time

import absl.logging

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_CACHED = re.compile(r"A cached execution \d+ is used\.")
_SKIPPED = re.compile(r"Skipping component (\S+)\.")  # a partial run's reused node
# Loggers of Fairway's own packages: their warnings are meant for the user, so they stay visible.
_OWN = ("fairway", "runners", "pipeline", "modules", "data", "monitoring", "serving")

_active: Progress | None = None


def stderr():
    """The console's stderr, also while a run sends file descriptor 2 to its log."""
    return _active.stderr if _active else sys.stderr


class Progress(logging.Handler):
    """Prints `[i/N] Node ... done in Xs (cached)` as LocalDagRunner logs each node.

    Inside the context, file descriptors 1 and 2 point at the log file: TensorFlow's C++ code
    and Beam write there directly, so Python logging alone cannot keep them off the console.
    Fairway's own lines go to `self.stdout` / `self.stderr`, copies of the real ones."""

    def __init__(self, log_file: pathlib.Path, node_ids: list[str] | None = None):
        super().__init__(level=logging.INFO)
        self.log_file = log_file
        self.begin(node_ids or [])
        self.stdout = self.stderr = None
        self.current, self.cached, self.done = None, False, []

    def begin(self, node_ids: list[str]) -> None:
        """The nodes about to run; elapsed times count from here."""
        self.node_ids = list(node_ids)
        self.start = self.node_start = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            if record.name.split(".")[0] in _OWN:
                self.echo(f"{record.levelname.lower()}: {msg}", err=True)
        elif m := _RUNNING.search(msg):
            self.current, self.cached, self.node_start = m.group(1), False, time.monotonic()
            i = self.node_ids.index(self.current) + 1 if self.current in self.node_ids else "?"
            self.echo(f"[{i}/{len(self.node_ids)}] {self.current} ...")
        elif m := _SKIPPED.search(msg):
            i = self.node_ids.index(m.group(1)) + 1 if m.group(1) in self.node_ids else "?"
            self.echo(f"[{i}/{len(self.node_ids)}] {m.group(1)}: reused")
        elif _CACHED.search(msg):
            self.cached = True
        elif m := _FINISHED.search(msg):
            now = time.monotonic()
            self.done.append(m.group(1))
            self.echo(f"      {m.group(1)} done in {now - self.node_start:.1f}s"
                      f"{' (cached)' if self.cached else ''}; elapsed {now - self.start:.1f}s")

    def echo(self, line: str, err: bool = False) -> None:
        """A line on the real console."""
        print(line, file=(self.stderr if err else self.stdout) or sys.stdout, flush=True)

    def __enter__(self):
        global _active
        root = logging.getLogger()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._file = logging.FileHandler(self.log_file)
        self._file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        # Console handlers (root's, TensorFlow's own) are muted: the file handler logs each record once.
        self._saved = [(h, h.level) for name in ("", "tensorflow")
                       for h in logging.getLogger(name).handlers]
        for h, _ in self._saved:
            h.setLevel(logging.CRITICAL + 1)
        self._root_level = root.level
        root.setLevel(logging.INFO)
        # Through absl's flag, not the logger: TF's SavedModel export restores absl's verbosity
        # from the flag, which would silently drop the INFO records progress is read from.
        self._absl_verbosity = absl.logging.get_verbosity()
        absl.logging.set_verbosity(absl.logging.INFO)
        logging.captureWarnings(True)  # Python warnings as log records, also under pytest
        root.addHandler(self._file)
        root.addHandler(self)

        for stream in (sys.stdout, sys.stderr):  # what was printed before goes to the console
            stream.flush()
        self._real = {fd: os.dup(fd) for fd in (1, 2)}
        self.stdout, self.stderr = (
            open(self._real[fd], "w", buffering=1, closefd=False, errors="replace",
                 encoding=getattr(stream, "encoding", None) or "utf-8")
            for fd, stream in ((1, sys.stdout), (2, sys.stderr)))
        log_fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        os.close(log_fd)
        _active = self
        self.echo(f"Detailed log: {self.log_file}")
        return self

    def __exit__(self, exc_type, exc, tb):
        global _active
        if exc_type is not None:  # the full traceback for the log; the caller prints the gist
            self._file.handle(logging.LogRecord("fairway", logging.ERROR, __file__, 0,
                                                "run failed", None, (exc_type, exc, tb)))
        root = logging.getLogger()
        root.removeHandler(self)
        _active = None
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # buffered library output still goes to the log
        self.stdout.close()  # flushes; closefd=False leaves the descriptor to the loop below
        self.stderr.close()
        self.stdout = self.stderr = None
        for fd, real in self._real.items():
            os.dup2(real, fd)
            os.close(real)
        root.removeHandler(self._file)
        self._file.close()
        logging.captureWarnings(False)
        root.setLevel(self._root_level)
        absl.logging.set_verbosity(self._absl_verbosity)
        for h, level in self._saved:
            h.setLevel(level)
