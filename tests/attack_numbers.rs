//! Numbers from a hostile user: every numeric flag of `train` and every numeric config field
//! (through a TOML config) over the whole `u64` / `f64` range, NaN and infinities included.
//! Each case runs the binary with a time limit: it must exit 0 or 2, never panic (101), abort
//! or die of a signal, and never hang (a case that is still running at the limit must have
//! started its work, i.e. printed the data and model summary that follows the checks).
//!
//! Short by default; `SEQCALC_LONG_TESTS=1` runs 25 times as many cases.

mod common;

use common::bin;
use proptest::prelude::*;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn long() -> bool {
    std::env::var_os("SEQCALC_LONG_TESTS").is_some_and(|v| v != "0")
}

fn cases(short: u32) -> u32 {
    if long() {
        short * 25
    } else {
        short
    }
}

/// A tiny run: two-digit addition, four hidden units, one epoch.
const BASE: &[(&str, &str)] = &[
    ("--digits", "2"),
    ("--size", "200"),
    ("--hidden", "4"),
    ("--epochs", "1"),
    ("--batch-size", "16"),
    ("--samples", "0"),
    ("--patience", "0"),
    ("--threads", "1"),
];

const INT_FLAGS: &[&str] = &[
    "--digits",
    "--min-digits",
    "--brackets",
    "--input-len",
    "--output-len",
    "--seed",
    "--size",
    "--hidden",
    "--layers",
    "--pq-max",
    "--heads",
    "--ffn",
    "--embed-dim",
    "--epochs",
    "--batch-size",
    "--patience",
    "--threads",
    "--samples",
];

const FLOAT_FLAGS: &[&str] = &["--lr", "--stop-at-exact"];

/// Integer fields of the config file, by section.
const INT_FIELDS: &[&str] = &[
    "task.digits",
    "task.min_digits",
    "task.pq_max",
    "task.terms_min",
    "task.terms_max",
    "task.brackets",
    "codec.input_len",
    "codec.output_len",
    "data.size",
    "model.hidden",
    "model.encoder_hidden",
    "model.layers",
    "model.heads",
    "model.ffn",
    "model.embed_dim",
    "train.epochs",
    "train.batch_size",
    "train.patience",
    "train.samples",
    "train.threads",
    "train.reduce_lr_patience",
    "seed",
];

const FLOAT_FIELDS: &[&str] = &[
    "data.val_fraction",
    "optim.lr",
    "optim.beta1",
    "optim.beta2",
    "optim.eps",
    "optim.clip_norm",
    "optim.warmup",
    "optim.min_lr_fraction",
    "train.min_delta",
    "train.stop_at_exact",
    "train.reduce_lr_factor",
];

/// Runs `seqcalc args` in `dir` for at most `limit`; returns whether it was accepted (exit 0,
/// or still working at the limit).
/// Panics (fails the test) on a signal, a panic or a hang.
fn check(args: &[String], dir: &Path, limit: Duration) -> bool {
    let (out, err) = (dir.join("out"), dir.join("err"));
    let mut child = bin()
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    match status {
        None => {
            assert!(
                !stdout.is_empty(),
                "{args:?}: no output after {limit:?} (a hang): {stderr}"
            );
            true
        }
        Some(s) => {
            let code = s.code();
            assert!(
                matches!(code, Some(0 | 2)),
                "{args:?}: exit {s:?} (want 0 or 2)\n{stderr}"
            );
            if code == Some(2) {
                assert_eq!(
                    stderr.trim_end().lines().count(),
                    1,
                    "{args:?}: the error is not one line:\n{stderr}"
                );
            }
            code == Some(0)
        }
    }
}

fn train_args(flag: &str, value: &str, dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = vec!["train".into(), "--runs-dir".into()];
    v.push(dir.join("runs").display().to_string());
    v.push("--name".into());
    v.push("n".into());
    for (f, x) in BASE {
        if *f != flag {
            v.push(f.to_string());
            v.push(x.to_string());
        }
    }
    // `--flag=value`: a negative value is then a value, not a flag.
    v.push(format!("{flag}={value}"));
    v
}

/// Whole-range integers, weighted towards the edges where arithmetic breaks.
fn any_int() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0..300u64,
        (0..64u32).prop_map(|k| 1u64 << k),
        (0..64u32).prop_map(|k| (1u64 << k).wrapping_sub(1)),
        Just(u64::MAX),
        Just(i64::MAX as u64),
    ]
}

/// Whole-range floats: NaN, infinities, subnormals, zero, negative and huge values.
fn any_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::ANY,
        -2.0..2.0f64,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE / 4.0),
        Just(0.0),
    ]
}

/// A float as TOML writes it.
fn toml_float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        let s = format!("{x:?}");
        if s.contains(['.', 'e', 'E']) {
            s
        } else {
            format!("{s}.0")
        }
    }
}

/// On disk, not in memory: a big model accepted near the limits writes gigabytes before it is
/// stopped.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Every integer flag at the edges (0, 1, 2^32, 2^63 - 1, u64::MAX): fast, always run.
#[test]
fn every_integer_flag_at_the_edges() {
    let dir = scratch();
    let mut trained = 0;
    for flag in INT_FLAGS {
        for v in [0, 1, 1 << 32, i64::MAX as u64, u64::MAX] {
            let _ = std::fs::remove_dir_all(dir.path().join("runs"));
            trained += check(
                &train_args(flag, &v.to_string(), dir.path()),
                dir.path(),
                Duration::from_secs(10),
            ) as usize;
        }
    }
    // The base run trains (so the cases above test the value, not a broken base).
    assert!(trained >= 10, "only {trained} cases trained");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn integer_flags_of_train(flag in 0..INT_FLAGS.len(), v in any_int()) {
        let dir = scratch();
        check(&train_args(INT_FLAGS[flag], &v.to_string(), dir.path()), dir.path(), Duration::from_secs(5));
    }

    #[test]
    fn float_flags_of_train(flag in 0..FLOAT_FLAGS.len(), x in any_float()) {
        let dir = scratch();
        check(&train_args(FLOAT_FLAGS[flag], &format!("{x}"), dir.path()), dir.path(), Duration::from_secs(5));
    }

    #[test]
    fn numeric_config_fields(int in proptest::option::of((0..INT_FIELDS.len(), any_int())),
                             float in proptest::option::of((0..FLOAT_FIELDS.len(), any_float()))) {
        let dir = scratch();
        let mut sections: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut top = Vec::new();
        let mut put = |path: &str, value: String| match path.split_once('.') {
            Some((s, k)) => sections.entry(s.to_string()).or_default().push(format!("{k} = {value}")),
            None => top.push(format!("{path} = {value}")),
        };
        // The tiny run's settings, then the attacked field (replacing the same key).
        let base = [("task.digits", "2"), ("data.size", "200"), ("model.hidden", "4"),
                    ("train.epochs", "1"), ("train.batch_size", "16"), ("train.samples", "0"),
                    ("train.threads", "1")];
        let attacked: Vec<&str> = [int.map(|(i, _)| INT_FIELDS[i]), float.map(|(i, _)| FLOAT_FIELDS[i])]
            .into_iter().flatten().collect();
        for (p, v) in base {
            if !attacked.contains(&p) {
                put(p, v.to_string());
            }
        }
        if let Some((i, v)) = int {
            // TOML integers are 64-bit signed: larger values are written as they are (an error).
            put(INT_FIELDS[i], v.to_string());
        }
        if let Some((i, x)) = float {
            put(FLOAT_FIELDS[i], toml_float(x));
        }
        let mut text = top.join("\n") + "\n";
        for (s, lines) in &sections {
            text += &format!("[{s}]\n{}\n", lines.join("\n"));
        }
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, &text).unwrap();
        let args: Vec<String> = ["train", "--config", cfg.to_str().unwrap(), "--runs-dir",
                                 dir.path().join("runs").to_str().unwrap(), "--name", "n"]
            .iter().map(|s| s.to_string()).collect();
        check(&args, dir.path(), Duration::from_secs(5));
    }
}
