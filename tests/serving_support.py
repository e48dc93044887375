"""Real SavedModels and real `fairway serve` processes on 127.0.0.1 for the serving tests."""
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

import tensorflow as tf

from modules import signatures

REPO = pathlib.Path(__file__).resolve().parent.parent


class Toy(tf.Module):
    """Every kind of signature the APIs handle; `weight` tells versions apart."""

    def __init__(self, weight: float):
        super().__init__()
        self.w = tf.Variable(weight)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x"),
                                  tf.TensorSpec([None], tf.int64, name="n"),
                                  tf.TensorSpec([None], tf.string, name="s")])
    def multi(self, x, n, s):
        return {"y": tf.reduce_sum(x, 1) * self.w + tf.cast(n, tf.float32),
                "s_bytes": s, "length": tf.strings.length(s)}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="v")])
    def single(self, v):
        return {"total": tf.reduce_sum(v, 1) * self.w}

    def _parse(self, serialized):
        x = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([2], tf.float32)})["x"]
        return x * self.w

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        x = self._parse(inputs)
        return {"classes": tf.tile(tf.constant([[b"a", b"b"]]), [tf.shape(x)[0], 1]),
                "scores": tf.nn.softmax(x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": tf.reduce_sum(self._parse(inputs), 1)}


def toy_model(path: pathlib.Path, weight: float = 1.0) -> pathlib.Path:
    """A SavedModel version folder, written as the Pusher does (saved_model.pb last)."""
    m = Toy(weight)
    tmp = path.with_name(f".{path.name}.tmp")
    tf.saved_model.save(m, str(tmp), signatures={
        "serving_default": m.multi, "single": m.single,
        signatures.CLASSIFY_SIGNATURE: m.classify, signatures.REGRESS_SIGNATURE: m.regress})
    signatures.set_method_names(str(tmp))
    publish(tmp, path)
    return path


def publish(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Move a SavedModel into place with saved_model.pb last (as the TFX Pusher copies)."""
    pb = src / "saved_model.pb"
    held = src.with_name(src.name + ".pb")
    pb.rename(held)
    src.rename(dst)
    held.rename(dst / "saved_model.pb")


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
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runners.cli", "serve", *args, "--rest-port", str(rest),
             "--grpc-port", str(grpc_port)], stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd=REPO)
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
