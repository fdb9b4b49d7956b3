"""The typed errors of a run, so that no code has to guess what happened from which files are on disk."""

from __future__ import annotations

import signal


class BadInput(ValueError):
    """A user mistake found before anything ran or was written (a bad config value, a missing data
    file). Its message is one line that says what to do; the command line prints it alone."""


class RunFailed(RuntimeError):
    """A run that failed after the trainer wrote its record (status failed, ``traceback.txt`` beside it).
    ``error`` (also the ``__cause__``) is what failed it. Any other exception out of the trainer wrote no
    record: BadInput (nothing written at all) or a failure before the trainer began."""

    def __init__(self, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error

    def __reduce__(self):  # pickled whole (a launcher's worker process) rather than by its message
        return type(self), (self.error,)


class RecordError(ValueError):
    """A run record (run.json) that does not validate against the schema: damaged or hand-edited."""


class DamagedFile(UserWarning):
    """A file of a run or trial that could not be used as it is (a metrics line that is not a row, a
    run.json or checkpoint that does not load). The message names the file (and line); what could not
    be used is skipped, or the file is set aside with a ``.damaged`` suffix and the trial runs again."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped a run. ``exit_status`` is the shell's 128 + signal.

    Raised by the training loop, it says what was kept: the run stopped after ``step`` (None: before
    training began), its record (status interrupted) is at ``record_path``, and rerunning the same
    command resumes from ``resume_step`` (the checkpoint written at the stop, or an earlier one; None:
    the trial starts again from step 0). ``note`` says why the stop was not saved at ``step`` (a second
    signal cut a step, or the checkpoint could not be written); ``result`` is set instead when the run
    ended as a result anyway (finished or diverged) before the stop took effect."""

    def __init__(self, signum: int = signal.SIGINT, step: int | None = None, record_path: str | None = None,
                 resume_step: int | None = None, note: str | None = None, result: str | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.step = step
        self.record_path = record_path
        self.resume_step = resume_step
        self.note = note
        self.result = result

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def __reduce__(self):  # pickled whole (a launcher's worker process) rather than by its message
        return type(self), (self.signum, self.step, self.record_path, self.resume_step, self.note, self.result)
