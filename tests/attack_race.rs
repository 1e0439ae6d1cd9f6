//! Two and three `train`s started together on one run directory, many times: exactly one
//! trains (exit 0), the others are refused with one line (exit 2), and the directory ends with
//! one run's files: the winner's config and the weights its seed gives alone.
//!
//! Short by default (20 races of two, 10 of three); `SEQCALC_LONG_TESTS=1` runs 1,000 and 300,
//! `SEQCALC_RACES=N` sets the races of two.

mod common;

use common::bin;
use std::path::Path;
use std::process::{Output, Stdio};

fn long() -> bool {
    std::env::var_os("SEQCALC_LONG_TESTS").is_some_and(|v| v != "0")
}

fn train_args(runs: &Path, seed: u64) -> Vec<String> {
    let mut v: Vec<String> = vec!["train".into(), "--runs-dir".into()];
    v.push(runs.display().to_string());
    for a in [
        "--name",
        "r",
        "--digits",
        "2",
        "--size",
        "200",
        "--hidden",
        "4",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--samples",
        "0",
        "--patience",
        "0",
        "--threads",
        "1",
    ] {
        v.push(a.into());
    }
    v.push(format!("--seed={seed}"));
    v
}

fn seed_of(dir: &Path) -> u64 {
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["seed"].as_u64().unwrap()
}

fn race(racers: usize, rounds: usize) {
    let root = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    // Each seed's weights, trained alone.
    let seeds: Vec<u64> = (1..=racers as u64).collect();
    let reference: Vec<Vec<u8>> = seeds
        .iter()
        .map(|&s| {
            let runs = root.path().join(format!("alone{s}"));
            let o = bin().args(train_args(&runs, s)).output().unwrap();
            assert!(o.status.success(), "{}", common::text(&o));
            std::fs::read(runs.join("r/weights.safetensors")).unwrap()
        })
        .collect();
    let (mut refused_busy, mut refused_done) = (0, 0);
    for round in 0..rounds {
        let runs = root.path().join(format!("race{round}"));
        let children: Vec<_> = seeds
            .iter()
            .map(|&s| {
                bin()
                    .args(train_args(&runs, s))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let winners: Vec<usize> = (0..racers).filter(|&i| outs[i].status.success()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of {racers} trained: {:?}",
            winners.len(),
            outs.iter()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .collect::<Vec<_>>()
        );
        for (i, o) in outs.iter().enumerate() {
            if i == winners[0] {
                continue;
            }
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "round {round}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "round {round}: {err}");
            if err.contains("another seqcalc") {
                refused_busy += 1;
            } else if err.contains("already holds a run") {
                refused_done += 1;
            } else {
                panic!("round {round}: unexpected refusal: {err}");
            }
        }
        let dir = runs.join("r");
        let w = seeds[winners[0]];
        assert_eq!(seed_of(&dir), w, "round {round}: config of another seed");
        assert!(
            std::fs::read(dir.join("weights.safetensors")).unwrap() == reference[winners[0]],
            "round {round}: the weights are not seed {w}'s alone"
        );
        std::fs::remove_dir_all(&runs).unwrap();
    }
    eprintln!(
        "{rounds} races of {racers}: one trained each time; the others refused while it trained ({refused_busy}) or after it had finished ({refused_done})"
    );
}

#[test]
fn two_trains_race_on_one_directory() {
    let rounds = std::env::var("SEQCALC_RACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if long() { 1000 } else { 20 });
    race(2, rounds);
}

#[test]
fn three_trains_race_on_one_directory() {
    race(3, if long() { 300 } else { 10 });
}
