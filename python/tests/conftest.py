"""Shared fixtures: a tiny seq2seq config that learns in seconds, one run trained from Python,
and the `seqcalc` binary for comparisons with the command line."""

import os
import subprocess
from pathlib import Path

import pytest

import seqcalc

REPO = Path(__file__).resolve().parents[2]

#: Epochs of the tiny run: Brownlee's 1..10 + 1..10 goes from about 0.1 to above 0.9
#: validation exact match in them (a few seconds on one thread).
EPOCHS = 40


def tiny_config(name="tiny"):
    """Brownlee's 1..10 + 1..10 seq2seq model, one thread (so its bits are fixed), no samples."""
    c = seqcalc.config("brownlee-seq2seq")
    c["name"] = name
    c["train"]["epochs"] = EPOCHS
    c["train"]["threads"] = 1
    c["train"]["samples"] = 0
    return c


@pytest.fixture(scope="session")
def binary():
    """The command-line binary (`cargo build --release`), or $SEQCALC_BIN."""
    path = Path(os.environ.get("SEQCALC_BIN", REPO / "target" / "release" / "seqcalc"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cargo build --release` first (or set SEQCALC_BIN)")
    return path


def run_cli(binary, *args, input=None, check=True):
    out = subprocess.run(
        [str(binary), *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"seqcalc {' '.join(map(str, args))}: {out.returncode}\n{out.stderr}")
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The tiny run trained from Python once, with the records its callback saw."""
    d = tmp_path_factory.mktemp("py") / "tiny"
    seen = []
    result = seqcalc.train(tiny_config(), run_dir=d, on_epoch=seen.append)
    return result, seen
