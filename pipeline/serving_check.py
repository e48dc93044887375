"""ServingCheck's executor: TF Serving warmup requests (and the serving schema) written into a
copy of the candidate, the requests replayed on it, on artifacts.

The component (`pipeline.components.ServingCheck`) only declares the inputs, outputs and
parameters and calls `run`; the tests run this code on a real SavedModel.
"""
from __future__ import annotations

import os

from pipeline import artifacts
from pipeline.errors import FairwayError


class ServingCheckError(FairwayError):
    """The candidate did not load or answer its warmup requests: it is not pushed."""


def eval_examples(examples_uri: str, split: str, n: int):
    """The first `n` tf.Examples of a split of an Examples artifact."""
    import tensorflow as tf

    try:
        records = artifacts.read_examples(examples_uri, split, limit=n)
    except artifacts.ArtifactError as e:
        raise ServingCheckError(f"{e}: no rows to build warmup requests from") from None
    return [tf.train.Example.FromString(r) for r in records]


def write_serving_schema(schema_uri: str, model_dir: str) -> str:
    """The curated schema of a Schema artifact, restricted to the SERVING environment (no
    label), as `model_dir`/assets.extra/schema.pbtxt: what `fairway serve --validate` checks
    requests against (serving reads only the pushed folder)."""
    import tensorflow as tf
    from google.protobuf import text_format

    from serving import validation

    source = artifacts.schema_path(schema_uri)
    try:
        with tf.io.gfile.GFile(source) as f:
            schema = validation.parse_schema(f.read(), source)
    except (tf.errors.OpError, ValueError) as e:
        raise ServingCheckError(f"the serving schema cannot be written: {e}") from None
    path = os.path.join(model_dir, validation.SCHEMA_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("# The curated schema restricted to the SERVING environment (written by "
                "ServingCheck):\n# `fairway serve --validate flag|reject` checks requests "
                "against it.\n")
        f.write(text_format.MessageToString(validation.serving_schema(schema)))
    return path


def run(model, examples, blessing, model_name: str, split: str = "eval",
        num_examples: int = 8, schema=None) -> None:
    """Copy the candidate `model` to `blessing`'s stamped-model folder with TF Serving warmup
    requests built from real `split` rows of `examples` (assets.extra/tf_serving_warmup_requests,
    one request per signature) and, given the `schema` artifact, the serving schema
    (assets.extra/schema.pbtxt), load the copy in Fairway's serving runtime and replay them.
    The Pusher pushes this copy, so real TF Serving warms up with the same requests.
    Arguments are TFX artifacts."""
    from tfx.utils import io_utils, path_utils

    from serving import servable, warmup

    src = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    dst = path_utils.stamped_model_path(blessing.uri)
    io_utils.copy_dir(src, dst)
    if schema is not None:
        write_serving_schema(schema.uri, dst)
    rows = eval_examples(examples.uri, split, num_examples)
    path = warmup.FILE
    try:
        path = warmup.write(dst, warmup.requests(dst, model_name, rows))
        replayed = warmup.replay(servable.Servable(model_name, 0, dst))
    except Exception as e:
        raise ServingCheckError(f"the candidate model failed its serving check ({path}); "
                                f"nothing is pushed: {e}") from e
    blessing.set_int_custom_property("blessed", 1)
    blessing.set_int_custom_property("has_model", 1)  # the Pusher pushes this copy
    blessing.set_int_custom_property("warmup_requests", replayed)
