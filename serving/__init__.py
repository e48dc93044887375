"""A TF Serving-compatible model server (`fairway serve`) and client (`fairway predict`), and the
SavedModel warmup format. It reads only what the Pusher wrote: nothing here imports pipeline/ or
runners/ (the import contract in pyproject.toml); the pipeline's ServingCheck uses it."""
