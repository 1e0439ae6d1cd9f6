"""seqcalc from Python: load a trained run of any kind, ask it questions, score it, generate
and encode the data it learns from, and train in this process, all on seqcalc's Rust engine.

    >>> import seqcalc
    >>> model = seqcalc.load("runs/keras-addition")
    >>> model.predict("12+345")
    Answer("12+345" = "357", confidence=0.996449, correct=True)
    >>> model.evaluate(n=1000, seed=7)["exact_match"]
    0.999

Every function calls the seqcalc library itself (the same code as the ``seqcalc`` command), so
answers, scores, generated data and trained weights are those the command line gives. Errors
are subclasses of :class:`SeqcalcError` carrying the command line's one-line messages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from . import _seqcalc
from ._seqcalc import Answer, Model
from .errors import (
    ArgumentError,
    ConfigError,
    QuestionError,
    RunDirError,
    SeqcalcError,
    TrainingError,
)

__version__, KERNELS = _seqcalc.version()

PathLike = Union[str, "os.PathLike[str]"]
ConfigLike = Union[str, "os.PathLike[str]", Dict[str, Any]]


def load(run_dir: PathLike, *, threads: Optional[int] = None) -> Model:
    """Reads the trained run in ``run_dir`` (any kind: seq2seq, coupled-transformer, pair-gru,
    regression) and returns a :class:`Model` ready to answer. ``threads``: engine workers
    (default one per core). Raises :class:`RunDirError` for a missing or damaged run."""
    return _seqcalc.load(os.fspath(run_dir), threads=threads)


def generate(
    n: int = 1000,
    seed: Optional[int] = None,
    *,
    task: Union[str, Dict[str, Any], None] = None,
    config: Optional[ConfigLike] = None,
    **fields: Any,
) -> List[Dict[str, Any]]:
    """The questions and answers ``seqcalc data`` writes, as dicts with ``question``,
    ``answer``, ``operand_lens`` and ``carries``.

    The task is the default experiment's (3-digit addition), or that of ``config`` (an
    experiment name, a config file or a dict), with ``task`` (a kind, e.g. ``"expression"``, or
    a dict of ``[task]`` fields) and keyword fields set over it::

        seqcalc.generate(5, digits=5, op="-")
        seqcalc.generate(20, task="expression", terms_max=3, ops="+-*", brackets=1)

    ``seed`` defaults to the config's seed (1337), as ``seqcalc data`` does.
    """
    task_fields = _task_fields(task, fields)
    return _seqcalc.generate(n, seed, task=task_fields, config=_config_arg(config))


def encode(
    questions: Union[str, Sequence[str]],
    answers: Optional[Sequence[str]] = None,
    *,
    config: Optional[ConfigLike] = None,
):
    """Questions (and answers) as symbol indices with a seq2seq config's codec (default: the
    default experiment's): a ``numpy.uint8`` array ``[N, input_len]``, padded and reversed as
    the codec says, or with ``answers`` a pair ``(inputs, targets)``. Symbol ``i`` is
    ``alphabet(config)[i]``. Use :meth:`Model.encode` for a trained run's codec."""
    if isinstance(questions, str):
        questions = [questions]
    return _seqcalc.encode(
        list(questions),
        None if answers is None else list(answers),
        config=_config_arg(config),
    )


def alphabet(config: Optional[ConfigLike] = None) -> str:
    """The symbols of a seq2seq config's codec, in index order."""
    return _seqcalc.codec_info(_config_arg(config))[0]


def config(name: Optional[ConfigLike] = None, *, quick: bool = False) -> Dict[str, Any]:
    """A run config as a dict, ``kind`` first: the default experiment's, a built-in
    experiment's (``quick=True``: its tiny version that trains in seconds), or a TOML or JSON
    file's. Edit it and pass it to :func:`train`."""
    return _seqcalc.config(_config_arg(name), quick=quick)


def experiments() -> List[Dict[str, str]]:
    """The built-in experiments: name, run kind, what each reproduces and its expected time."""
    return [
        {"name": n, "kind": k, "reproduces": r, "expected_time": t}
        for n, k, r, t in _seqcalc.experiments()
    ]


def history(run_dir: PathLike) -> List[Dict[str, Any]]:
    """A run's training history, one dict per epoch (runs trained by steps: per evaluation)."""
    return _seqcalc.history(os.fspath(run_dir))


def dataframe(records: List[Dict[str, Any]]):
    """Records (a history, generated problems) as a pandas DataFrame; needs pandas."""
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("seqcalc.dataframe needs pandas: pip install pandas") from e
    return pandas.DataFrame.from_records(records)


class TrainResult:
    """A training that returned: where the run is, whether it stopped early, its history, and
    the trained model (loaded on first use)."""

    def __init__(self, run_dir: Path, interrupted: bool) -> None:
        self.run_dir = run_dir
        #: True when ``on_epoch`` returned False and training stopped with a checkpoint.
        self.interrupted = interrupted
        self._model: Optional[Model] = None

    @property
    def history(self) -> List[Dict[str, Any]]:
        """One dict per epoch: losses, per-character accuracy, exact match, seconds."""
        return history(self.run_dir)

    @property
    def history_frame(self):
        """The history as a pandas DataFrame (needs pandas)."""
        return dataframe(self.history)

    @property
    def model(self) -> Model:
        """The trained model (the kept weights: the best validation loss)."""
        if self._model is None:
            self._model = load(self.run_dir)
        return self._model

    def __repr__(self) -> str:
        state = ", interrupted" if self.interrupted else ""
        return f"TrainResult({str(self.run_dir)!r}{state})"


EpochCallback = Callable[[Dict[str, Any]], Optional[bool]]


def train(
    config: Optional[ConfigLike] = None,
    *,
    run_dir: Optional[PathLike] = None,
    runs_dir: PathLike = "runs",
    name: Optional[str] = None,
    restart: bool = False,
    on_epoch: Optional[EpochCallback] = None,
    on_line: Optional[Callable[[str], Any]] = None,
    verbose: bool = False,
) -> TrainResult:
    """Trains a run of any kind in this process, through the same training loop as
    ``seqcalc train`` (same seed and thread count: the same weights, bit for bit).

    ``config``: a built-in experiment's name (``"brownlee-seq2seq"``), a TOML or JSON file, TOML
    or JSON text, or a dict (see :func:`config`); default the Keras 3-digit addition model.
    The run goes to ``run_dir``, default ``runs_dir/<name>``; an existing run is refused unless
    ``restart=True``.

    ``on_epoch(record)`` is called after each epoch of a seq2seq run with that epoch's dict
    (as in :attr:`TrainResult.history`, plus ``improved``); returning ``False`` stops training
    with a checkpoint. ``on_line(text)`` receives the lines other run kinds print.
    ``verbose=True`` prints one line per epoch.

    Ctrl-C (KeyboardInterrupt), or an exception raised by a callback, stops training after the
    current batch, writes a checkpoint and is raised; :func:`resume` continues the run.
    """
    if run_dir is None:
        run_dir = _seqcalc.run_path(_config_arg(config), os.fspath(runs_dir), name)
    elif name is not None:
        raise ArgumentError("give run_dir or name, not both: the run directory names the run")
    return _train(config, Path(run_dir), "restart" if restart else "new", on_epoch, on_line, verbose)


def resume(
    run_dir: PathLike,
    *,
    epochs: Optional[int] = None,
    on_epoch: Optional[EpochCallback] = None,
    on_line: Optional[Callable[[str], Any]] = None,
    verbose: bool = False,
) -> TrainResult:
    """Continues the stopped run in ``run_dir`` from its checkpoint; it ends with the same
    weights as a run never stopped. A finished run is left as it is, unless ``epochs`` raises
    a seq2seq run's epoch bound (as ``seqcalc train --resume DIR --epochs N``): then it trains
    on to the new bound."""
    return _train(None, Path(run_dir), "resume", on_epoch, on_line, verbose, epochs)


def _train(
    config, run_dir: Path, open_mode: str, on_epoch, on_line, verbose, epochs=None
) -> TrainResult:
    if verbose:
        on_epoch = _printing(on_epoch)
        on_line = _printing_lines(on_line)
    interrupted = _seqcalc.train_run(
        _config_arg(config),
        os.fspath(run_dir),
        open=open_mode,
        on_epoch=on_epoch,
        on_line=on_line,
        epochs=epochs,
    )
    return TrainResult(run_dir, interrupted)


def _printing(inner: Optional[EpochCallback]) -> EpochCallback:
    def on_epoch(r: Dict[str, Any]) -> Optional[bool]:
        print(
            f"Epoch {r['epoch']:>3}  loss {r['train_loss']:.4f}  acc {r['train_char_acc']:.4f}"
            f"  |  val_loss {r['val_loss']:.4f}  val_acc {r['val_char_acc']:.4f}"
            f"  val_exact {r['val_exact']:.4f}  |  {r['epoch_secs']:.2f}s"
            + ("  *" if r.get("improved") else ""),
            flush=True,
        )
        return inner(r) if inner is not None else None

    return on_epoch


def _printing_lines(inner: Optional[Callable[[str], Any]]) -> Callable[[str], Any]:
    def on_line(line: str) -> Any:
        print(line, flush=True)
        return inner(line) if inner is not None else None

    return on_line


def _config_arg(config: Optional[ConfigLike]):
    if config is None or isinstance(config, (str, dict)):
        return config
    if isinstance(config, os.PathLike):
        return os.fspath(config)
    raise TypeError(
        "config is an experiment name, a path, TOML or JSON text, or a dict, "
        f"not {type(config).__name__}"
    )


def _task_fields(task, fields: Dict[str, Any]):
    if not fields:
        return task
    merged: Dict[str, Any] = {}
    if isinstance(task, str):
        merged["kind"] = task
    elif isinstance(task, dict):
        merged.update(task)
    elif task is not None:
        raise TypeError("task is a task kind's name or a dict of task fields")
    merged.update(fields)
    return merged


__all__ = [
    "Answer",
    "Model",
    "TrainResult",
    "load",
    "generate",
    "encode",
    "alphabet",
    "config",
    "experiments",
    "history",
    "dataframe",
    "train",
    "resume",
    "SeqcalcError",
    "RunDirError",
    "ConfigError",
    "QuestionError",
    "ArgumentError",
    "TrainingError",
    "KERNELS",
]
