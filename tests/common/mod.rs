//! Helpers shared by the integration tests (each test file includes this with `mod common;`).
#![allow(dead_code)]

use std::process::{Command, Output};

/// The seqcalc binary, without colours.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_seqcalc"));
    c.env("NO_COLOR", "1");
    c
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("seqcalc runs")
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
