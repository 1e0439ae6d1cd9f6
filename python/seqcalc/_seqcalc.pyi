"""Type stubs of the native module (PyO3). Use the functions of the `seqcalc` package; these
are the calls it makes."""

from os import PathLike
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

_Config = Union[str, Dict[str, Any], None]
_Path = Union[str, PathLike[str]]

class Answer:
    """One answer to one question."""

    @property
    def question(self) -> str: ...
    @property
    def output(self) -> Optional[str]:
        """The answer as a person writes it (None when the question could not be asked)."""
    @property
    def confidence(self) -> Optional[float]:
        """The product of the written symbols' probabilities (models with a softmax output)."""
    @property
    def steps(self) -> List[Tuple[str, float]]:
        """Each written symbol and its probability, in writing order, to the end symbol."""
    @property
    def char_confidences(self) -> List[float]:
        """The probability of each written symbol, in writing order."""
    @property
    def work(self) -> Optional[str]:
        """The worked answer of a model trained with a scratchpad."""
    @property
    def value(self) -> Optional[float]:
        """The raw output of a regression model."""
    @property
    def correct(self) -> Optional[bool]:
        """Whether the answer is right, where the question's task can tell."""
    @property
    def error(self) -> Optional[str]:
        """Why the question could not be asked (predict with errors="return")."""
    def to_dict(self) -> Dict[str, Any]:
        """The answer as a line of `predict --jsonl`."""

class Model:
    """A trained run of any kind, read back from its directory."""

    @property
    def kind(self) -> str: ...
    @property
    def run_dir(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @property
    def config(self) -> Dict[str, Any]: ...
    @property
    def batch_rows(self) -> int: ...
    @overload
    def predict(self, questions: str, *, errors: str = "raise") -> Answer: ...
    @overload
    def predict(self, questions: Sequence[str], *, errors: str = "raise") -> List[Answer]: ...
    def evaluate(
        self,
        n: Optional[int] = None,
        seed: Optional[int] = None,
        *,
        exhaustive: bool = False,
        lengths: Optional[Sequence[int]] = None,
        stress: bool = False,
    ) -> Dict[str, Any]:
        """The object `seqcalc eval --json` prints for the same run, n and seed."""
    @overload
    def encode(self, questions: Sequence[str], answers: None = None) -> npt.NDArray[np.uint8]: ...
    @overload
    def encode(
        self, questions: Sequence[str], answers: Sequence[str]
    ) -> Tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]: ...
    def history(self) -> List[Dict[str, Any]]: ...

def load(run_dir: _Path, *, threads: Optional[int] = None) -> Model: ...
def history(run_dir: _Path) -> List[Dict[str, Any]]: ...
def generate(
    n: int = 1000,
    seed: Optional[int] = None,
    *,
    task: Union[str, Dict[str, Any], None] = None,
    config: _Config = None,
) -> List[Dict[str, Any]]: ...
def encode(
    questions: Sequence[str], answers: Optional[Sequence[str]] = None, *, config: _Config = None
) -> Any: ...
def codec_info(config: _Config = None) -> Tuple[str, int, int]: ...
def config(config: _Config = None, *, quick: bool = False) -> Dict[str, Any]: ...
def experiments() -> List[Tuple[str, str, str, str]]: ...
def train_run(
    config: _Config,
    run_dir: _Path,
    *,
    open: str = "new",
    on_epoch: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None,
    on_line: Optional[Callable[[str], Any]] = None,
    epochs: Optional[int] = None,
) -> bool: ...
def run_path(config: _Config, runs_dir: _Path, name: Optional[str] = None) -> str: ...
def version() -> Tuple[str, str]: ...
