# One image for Dataflow workers (a custom Beam SDK container) and Vertex AI Pipelines (each
# node runs TFX's v2 entrypoint, named in the compiled spec). Build from the repository root:
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/fairway:TAG .
FROM apache/beam_python3.10_sdk:2.74.0

# Keras 2 for MinDiff and TFX 1.16, set before Python starts: Beam's boot and TFX's v2 entrypoint
# import TensorFlow before any Fairway code (outside containers, runners/__init__.py sets it).
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /fairway

# The worker's hashed lock first, so a code change does not reinstall the stack: the base
# dependencies only (no pyspark, matplotlib, pytest or pip tooling; `make lock` writes it).
# --no-deps: the lock is complete and already carries requirements/overrides.txt (a resolving
# install would refuse tensorflow-hub 0.16.1 against tfx's pin). The Beam SDK image's own test
# tooling goes too.
COPY requirements/ requirements/
RUN pip install --no-cache-dir "uv==0.13.9" \
 && uv pip install --system --no-cache --no-deps --require-hashes \
      -r requirements/worker-lock.txt \
 && uv pip install --system --no-cache --no-deps --require-hashes \
      -r requirements/fairness-indicators.txt \
 && uv pip uninstall --system pytest pytest-forked pytest-timeout pytest-xdist execnet \
      iniconfig hypothesis

# Fairway itself, and the curated schemas the compiled pipeline reads at /fairway/schemas.
COPY pyproject.toml README.md ./
COPY pipeline/ pipeline/
COPY modules/ modules/
COPY runners/ runners/
COPY serving/ serving/
COPY monitoring/ monitoring/
COPY data/ data/
COPY schemas/ schemas/
RUN uv pip install --system --no-cache --no-deps --no-build-isolation . \
 && pip uninstall -y -q uv

# The Beam SDK image's entrypoint (/opt/apache/beam/boot) stays: Dataflow starts workers with
# it, and Vertex overrides it with the command in the pipeline spec.
