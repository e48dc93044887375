"""Entry points: the `fairway` CLI and the thin per-orchestrator runners.

The process environment is decided here, before anything imports TensorFlow: every entry point
goes through this package (the `fairway` console script and `python -m runners.cli`; the
benchmarks and the test suite import it first, from benchmarks/__init__.py and tests/conftest.py).
Containers set TF_USE_LEGACY_KERAS in the Dockerfile instead: their entrypoints (Beam's boot,
TFX's executor) import TensorFlow before any Fairway code.
"""
import logging
import os
import warnings

# MinDiff and TFX 1.16 expect Keras 2 (tf_keras); this must be set before tf.keras is first used.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Keep TF's C++ banner out of the output, and at 3 also the CUDA plugin registration errors
# ("Unable to register cuDNN factory") that every CPU-only start prints.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# google-api-core warns about Python 3.10 on every import; 3.10 is what TFX 1.16 supports.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")


class _NoDeprecationNotices(logging.Filter):
    """TensorFlow logs a notice the first time a library (TFX, TFMA) calls a deprecated API
    (`fairway status` printed one from TFMA's reader): nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is deprecated and will be removed" not in str(record.msg)


logging.getLogger("tensorflow").addFilter(_NoDeprecationNotices())
