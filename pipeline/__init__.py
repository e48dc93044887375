"""Fairway's pipeline definition: typed config, TFX wiring, evaluation config."""
import os

# MinDiff and TFX 1.16 expect Keras 2; this must be set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
