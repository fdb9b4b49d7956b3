"""The typed errors of a run, so that no code has to guess what happened from which files are on disk."""

from __future__ import annotations


class BadInput(ValueError):
    """A user mistake found before anything ran or was written (a bad config value, a missing data
    file). Its message is one line that says what to do; the command line prints it alone."""


class RecordError(ValueError):
    """A run record (run.json) that does not validate against the schema: damaged or hand-edited."""
