"""Code that TFX components execute: preprocessing_fn, Keras builders, run_fn."""
import os

# The one place besides the entry points (runners/__init__.py) and the Dockerfile: Beam SDK
# harnesses in a worker pool Fairway did not start (an operator's sidecar, docs/scale-out.md)
# import this package with their own environment. tf.keras reads the variable when first used,
# so setting it on import still takes effect there.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
