"""Real SavedModels for the serving tests; `serve` (a real `fairway serve` process) comes from
runners.serve_process, which the serving benchmark uses too."""
from __future__ import annotations

import pathlib

import tensorflow as tf

from modules import signatures
from runners.serve_process import serve  # noqa: F401  (the tests call support.serve)


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
