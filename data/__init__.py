"""Dataset acquisition: sources, checksums and cleaning (see data/README.md)."""
