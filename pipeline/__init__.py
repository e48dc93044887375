"""Fairway's pipeline definition: typed config, TFX wiring, evaluation config.

The environment TensorFlow needs (TF_USE_LEGACY_KERAS) is set by the entry points (runners/) and
the Dockerfile, not on import here."""
