"""Release management: the model registry in ML Metadata (versions, aliases, audit trail), the
routing file `fairway serve --registry` follows, deployment strategies with automated canary
analysis, and the feedback loop from served traffic back to training data."""
