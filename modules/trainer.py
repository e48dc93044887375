"""TFX Trainer entry points: the MinDiff teacher (`run_fn`) and the distilled student
(`student_run_fn`, whose `base_model` is the teacher). Both export the plain Keras model."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import absl.logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from modules import distillation
from modules import features as F
from modules import mindiff
from modules import model as model_lib
from modules import signatures

_LOG_EVERY = 10  # progress lines per training run


def input_fn(files, data_accessor, tft_output: tft.TFTransformOutput, label_xf: str,
             batch_size: int, num_epochs: int | None = None) -> tf.data.Dataset:
    """Batches of (transformed features, label); repeats forever unless num_epochs is set."""
    return data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_xf,
                                              num_epochs=num_epochs),
        tft_output.transformed_metadata.schema)


def vocab_sizes(tft_output: tft.TFTransformOutput, f: F.Features) -> dict[str, int]:
    # +1: the OOV bucket added by compute_and_apply_vocabulary.
    return {k: tft_output.vocabulary_size_by_name(F.vocab_name(k)) + 1 for k in f.categorical}


@dataclasses.dataclass
class _Job:
    """What both entry points read from FnArgs."""

    f: F.Features
    training: Mapping[str, Any]
    mindiff: Mapping[str, Any]
    tft_output: tft.TFTransformOutput
    train: tf.data.Dataset
    evaluation: tf.data.Dataset
    fn_args: Any

    @classmethod
    def from_fn_args(cls, fn_args) -> "_Job":
        f = F.Features.from_config(fn_args.custom_config)
        training = fn_args.custom_config["training"]
        tf.keras.utils.set_random_seed(training["seed"])
        tft_output = tft.TFTransformOutput(fn_args.transform_output)
        train, evaluation = (
            input_fn(files, fn_args.data_accessor, tft_output, f.label_xf, training["batch_size"])
            for files in (fn_args.train_files, fn_args.eval_files))
        return cls(f, training, fn_args.custom_config.get("mindiff", {}), tft_output, train,
                   evaluation, fn_args)

    def mlp(self, hidden_units, embedding_dim, name) -> tf.keras.Model:
        return model_lib.build_mlp(self.f.numeric, vocab_sizes(self.tft_output, self.f),
                                   hidden_units, embedding_dim, self.training["learning_rate"],
                                   name=name, indicators=self.f.indicators)

    def remediate(self, model: tf.keras.Model, train: tf.data.Dataset, weight: float,
                  labelled=lambda ds: ds, kernel: str | None = None):
        """(model to fit, its training data): MinDiff-wrapped when weight > 0.

        `labelled` maps the MinDiff group data the way `train` was mapped (same label shape).
        """
        if weight <= 0:
            return model, train
        md, sensitive = self.mindiff, F.xf(self.f.sensitive)
        once = input_fn(self.fn_args.train_files, self.fn_args.data_accessor, self.tft_output,
                        self.f.label_xf, 1024, num_epochs=1).unbatch()
        groups = []
        for value, group_id in zip(md["groups"], self.group_ids()):
            # Fail before training: on an empty group the repeating filter would never yield.
            if next(iter(mindiff.group_examples(once, sensitive, group_id, md["label"]).take(1)),
                    None) is None:
                raise ValueError(
                    f"dataset.groups: no training example has {self.f.sensitive} = {value!r} "
                    f"and {self.f.label} = {md['label']} (mindiff.label); MinDiff needs "
                    "examples of both groups")
            groups.append(labelled(mindiff.group_dataset(self.train.unbatch(), sensitive,
                                                         group_id, md["label"],
                                                         md["batch_size"])))
        kernel = kernel or md["kernel"]
        absl.logging.info("MinDiff: %s vs %s on %s = %d, %s loss, weight %.3g",
                          *md["groups"], self.f.label, md["label"], kernel, weight)
        return (mindiff.wrap(model, weight, kernel, md["threshold"]),
                mindiff.pack(train, groups[0], groups[1]))

    def group_ids(self) -> list[int]:
        vocab = [v.decode() for v in
                 self.tft_output.vocabulary_by_name(F.vocab_name(self.f.sensitive))]
        missing = [g for g in self.mindiff["groups"] if g not in vocab]
        if missing:
            raise ValueError(f"dataset.groups: {missing} never occur in the training data's "
                             f"'{self.f.sensitive}' column (values: {sorted(vocab)[:20]})")
        return [vocab.index(g) for g in self.mindiff["groups"]]

    def fit(self, model: tf.keras.Model, train, evaluation, loss) -> None:
        steps = self.fn_args.train_steps
        epochs = min(_LOG_EVERY, steps)
        model.compile(optimizer=tf.keras.optimizers.Adam(self.training["learning_rate"]),
                      loss=loss)
        absl.logging.info("Training %s for %d steps", model.name, steps)
        # Validate once at the end: per-epoch validation would cost eval_steps batches each time.
        history = model.fit(train, epochs=epochs, steps_per_epoch=steps // epochs,
                            validation_data=evaluation, validation_steps=self.fn_args.eval_steps,
                            validation_freq=epochs, verbose=2,
                            callbacks=[tf.keras.callbacks.TerminateOnNaN()])
        loss = history.history["loss"][-1]
        if not np.isfinite(loss):  # e.g. a too large mindiff.weight: never export such a model
            raise ValueError(f"{model.name}: training diverged (loss {loss}); lower "
                             "mindiff.weight or training.learning_rate")

    def export(self, model: tf.keras.Model) -> None:
        signatures.export(model, self.tft_output, self.f, self.fn_args.serving_model_dir)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """The teacher: an MLP trained with MinDiff when mindiff.weight > 0."""
    job = _Job.from_fn_args(fn_args)
    t = job.training
    model = job.mlp(t["hidden_units"], t["embedding_dim"], "teacher")
    fit_model, train = job.remediate(model, job.train, job.mindiff.get("weight", 0.0))
    job.fit(fit_model, train, job.evaluation, tf.keras.losses.BinaryCrossentropy())
    job.export(model)


def student_run_fn(fn_args: tfx.components.FnArgs) -> None:
    """The student: a compact MLP distilled from the teacher given as `base_model`."""
    job = _Job.from_fn_args(fn_args)
    d = fn_args.custom_config["distillation"]
    if not fn_args.base_model:
        raise ValueError("student_run_fn needs the teacher model as the Trainer's base_model")
    teacher = tf.keras.models.load_model(fn_args.base_model, compile=False)
    student = job.mlp(d["hidden_units"], d["embedding_dim"], "student")
    ratio = student.count_params() / teacher.count_params()
    absl.logging.info("Student %d parameters, teacher %d (ratio %.3f)", student.count_params(),
                      teacher.count_params(), ratio)
    if ratio > d["max_param_ratio"]:
        raise ValueError(
            f"distillation.hidden_units: the student has {student.count_params()} parameters, "
            f"{ratio:.2f} of the teacher's {teacher.count_params()}; expected at most "
            f"{d['max_param_ratio']} (distillation.max_param_ratio)")
    train = distillation.with_teacher(job.train, teacher)
    evaluation = distillation.with_teacher(job.evaluation, teacher)
    fit_model, train = job.remediate(student, train, d["mindiff_weight"],
                                     labelled=lambda ds: distillation.with_teacher(ds, teacher),
                                     kernel=d.get("mindiff_kernel"))
    job.fit(fit_model, train, evaluation,
            distillation.DistillationLoss(d["alpha"], d["temperature"]))
    job.export(student)
