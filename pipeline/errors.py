"""The base error type: every package below the CLI raises it (or a subclass) for a failure the
user can act on, and `fairway` prints its message without a traceback."""


class FairwayError(Exception):
    """An expected failure with a message for the user (the CLI prints it without a traceback)."""
