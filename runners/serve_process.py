"""`fairway serve` in a child process on 127.0.0.1, free ports picked, stopped with SIGTERM:
what the serving tests and `make bench-serving` run against."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

from pipeline.config import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    proc: subprocess.Popen
    rest_port: int
    grpc_port: int
    log: pathlib.Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.output()}")
            time.sleep(0.2)


@contextlib.contextmanager
def serve(log_dir: pathlib.Path, *args: str, ready: bool = True):
    """`fairway serve ARGS` in its own process, stopped with SIGTERM afterwards."""
    rest, grpc_port = free_port(), free_port()
    log = log_dir / f"serve-{rest}.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")  # runners.cli sets the rest
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runners.cli", "serve", *args, "--rest-port", str(rest),
             "--grpc-port", str(grpc_port)], stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd=REPO_ROOT)
    server = Server(proc, rest, grpc_port, log)
    try:
        if ready:
            server.wait_for("fairway serve: ready")
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
