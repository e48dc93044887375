"""Benchmarks (`make bench`, `make bench-runners`, `make bench-serving`): entry points that go
through the runners package first, which sets the process environment before TensorFlow."""
import runners  # noqa: F401
