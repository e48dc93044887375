"""Entry points: the `fairway` CLI and the thin per-orchestrator runners."""
import os
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ banner out of the output
# google-api-core warns about Python 3.10 on every import; 3.10 is what TFX 1.16 supports.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
