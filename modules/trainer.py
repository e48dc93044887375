"""TFX Trainer entry point: read Transform output, fit the Keras model, export signatures."""
from __future__ import annotations

import absl.logging
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from modules import features as F
from modules import model as model_lib
from modules import signatures

_LOG_EVERY = 10  # progress lines per training run


def input_fn(files, data_accessor, tft_output: tft.TFTransformOutput, label_xf: str,
             batch_size: int) -> tf.data.Dataset:
    return data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_xf),
        tft_output.transformed_metadata.schema)


def vocab_sizes(tft_output: tft.TFTransformOutput, f: F.Features) -> dict[str, int]:
    # +1: the OOV bucket added by compute_and_apply_vocabulary.
    return {k: tft_output.vocabulary_size_by_name(F.vocab_name(k)) + 1 for k in f.categorical}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    f = F.Features.from_config(fn_args.custom_config)
    knobs = fn_args.custom_config["training"]
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    train = input_fn(fn_args.train_files, fn_args.data_accessor, tft_output, f.label_xf,
                     knobs["batch_size"])
    evaluation = input_fn(fn_args.eval_files, fn_args.data_accessor, tft_output, f.label_xf,
                          knobs["batch_size"])
    model = model_lib.build_mlp(f.numeric, vocab_sizes(tft_output, f), knobs["hidden_units"],
                                knobs["embedding_dim"], knobs["learning_rate"])
    epochs = min(_LOG_EVERY, fn_args.train_steps)
    absl.logging.info("Training %s for %d steps", model.name, fn_args.train_steps)
    # Validate once at the end: per-epoch validation would cost eval_steps batches each time.
    model.fit(train, epochs=epochs, steps_per_epoch=fn_args.train_steps // epochs,
              validation_data=evaluation, validation_steps=fn_args.eval_steps,
              validation_freq=epochs, verbose=2)
    signatures.export(model, tft_output, f, fn_args.serving_model_dir)
