//! Helpers shared by the integration tests (each test file includes this with `mod common;`).
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The small model the end-to-end tests train on 2-digit addition: 64 LSTM units, a learning
/// rate that learns in a few epochs, two threads, a fixed seed.
pub const SMALL_MODEL: &[&str] = &[
    "--hidden",
    "64",
    "--lr",
    "0.005",
    "--batch-size",
    "64",
    "--seed",
    "3",
    "--threads",
    "2",
];

/// `SMALL_MODEL` on 2-digit addition with `size` questions.
pub fn small_addition(size: &'static str) -> Vec<&'static str> {
    let mut v = vec!["--digits", "2", "--size", size];
    v.extend_from_slice(SMALL_MODEL);
    v
}

/// The seqcalc binary, without colours.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seqcalc"));
    c.env("NO_COLOR", "1");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("seqcalc runs")
}

/// `seqcalc args` with `input` on its stdin; stdout and stderr captured.
pub fn run_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("seqcalc runs");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// stdout then stderr, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Seeded xorshift: generated inputs and kill plans are reproducible from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// `n` random digits, `n` itself drawn below `below` (plus `at_least`).
    pub fn digits(&mut self, at_least: usize, below: usize) -> Vec<u8> {
        let n = at_least + self.below(below);
        (0..n).map(|_| b'0' + self.below(10) as u8).collect()
    }
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}
