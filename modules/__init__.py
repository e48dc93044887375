"""Code that TFX components execute: preprocessing_fn, Keras builders, run_fn."""
import os

# Set here too: Beam workers import modules/ without going through the CLI.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
