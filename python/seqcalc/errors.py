"""The exceptions seqcalc raises. Each carries the command line's one-line message."""


class SeqcalcError(Exception):
    """Every error seqcalc raises."""


class RunDirError(SeqcalcError):
    """A run directory that is missing, not a run, or has missing or damaged files."""


class ConfigError(SeqcalcError, ValueError):
    """A config that cannot be read or cannot run: unknown fields, numbers out of bounds, an
    unknown experiment or run kind."""


class QuestionError(SeqcalcError, ValueError):
    """A question (or answer) the model cannot read: an unknown character, too long."""


class ArgumentError(SeqcalcError, ValueError):
    """An argument out of its bounds or not applicable to this run."""


class TrainingError(SeqcalcError):
    """Training could not run or finish: the run exists, it is locked, it diverged, a write
    failed."""


__all__ = [
    "SeqcalcError",
    "RunDirError",
    "ConfigError",
    "QuestionError",
    "ArgumentError",
    "TrainingError",
]
