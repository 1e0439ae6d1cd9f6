//! Numbers from a hostile user: every numeric flag of `train`, `predict`, `eval`, `data`,
//! `bench`, `sweep` (grid values too) and `experiment run --quick` (for every run kind), and
//! every numeric config field (through a TOML config), over the whole `u64` / `f64` range, NaN
//! and infinities included. Each case runs the binary with a time limit: `train` must exit 0 or
//! 2, the other commands 0, 1 or 2; never panic (101), abort or die of a signal, and never hang.
//! A case still running at the limit must have started its work (printed what follows the
//! checks), or, for commands that print only at the end, have been given a value small enough
//! to be real work (below 2^27, or a finite float of at most an hour); a larger one must be
//! refused or finish.
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

const FLOAT_FLAGS: &[&str] = &["--lr", "--stop-at-exact", "--uniform-fraction"];

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
    "task.uniform_fraction",
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
/// Panics (fails the test) on a signal, a panic, a hang, or an exit code other than 0 or 2.
fn check(args: &[String], dir: &Path, limit: Duration) -> bool {
    let code = attack(args, dir, limit, false);
    assert!(
        matches!(code, None | Some(0 | 2)),
        "{args:?}: exit {code:?} (want 0 or 2)"
    );
    code.is_none() || code == Some(0)
}

/// Runs `seqcalc args` in `dir` for at most `limit`; returns its exit code, or None if it was
/// still running at the limit, which is allowed when it has printed something or when
/// `quiet_ok` (the value is small enough to be real work for a command that prints at the end).
/// Panics (fails the test) on a signal, a panic, an exit code other than 0, 1 or 2, an error
/// (exit 2) of more than one line, and a silent hang.
fn attack(args: &[String], dir: &Path, limit: Duration, quiet_ok: bool) -> Option<i32> {
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
                quiet_ok || !stdout.is_empty(),
                "{args:?}: no output after {limit:?} (a hang): {stderr}"
            );
            None
        }
        Some(s) => {
            let code = s.code();
            assert!(
                matches!(code, Some(0..=2)),
                "{args:?}: exit {s:?} (want 0, 1 or 2)\n{stderr}"
            );
            if code == Some(2) {
                assert_eq!(
                    stderr.trim_end().lines().count(),
                    1,
                    "{args:?}: the error is not one line:\n{stderr}"
                );
            }
            code
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

// ---- The other commands ----

/// A value small enough to be real work: a command that prints only at the end may still be
/// busy with it at the time limit.
fn real_work_int(v: u64) -> bool {
    v < 1 << 27
}

fn real_work_float(x: f64) -> bool {
    x.is_finite() && x.abs() <= 3600.0
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Trained once per test binary, kept for its lifetime: a tiny seq2seq run, a tiny
/// coupled-transformer run and a tiny many-operand run, for `predict` and `eval`.
fn tiny_runs() -> &'static (String, String, String) {
    static RUNS: std::sync::OnceLock<(String, String, String)> = std::sync::OnceLock::new();
    RUNS.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let runs = root.join("runs");
        let r = runs.to_str().unwrap();
        let mut args = vec!["train", "--runs-dir", r, "--name", "s2s"];
        for (f, v) in BASE {
            args.extend([*f, *v]);
        }
        let o = bin().args(&args).output().unwrap();
        assert!(o.status.success(), "{}", common::text(&o));
        let o = bin()
            .args(["experiment", "show", "length-generalisation", "--quick"])
            .output()
            .unwrap();
        assert!(o.status.success());
        let cfg = root.join("lg.toml");
        std::fs::write(&cfg, &o.stdout).unwrap();
        let o = bin()
            .args(["train", "--config", cfg.to_str().unwrap(), "--runs-dir", r])
            .args(["--name", "lg", "--threads", "1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::text(&o));
        let o = bin()
            .args(["experiment", "run", "many-operand-addition", "--quick"])
            .args(["--runs-dir", r, "--threads", "1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::text(&o));
        (
            runs.join("s2s").display().to_string(),
            runs.join("lg").display().to_string(),
            runs.join("many-operand-addition-quick")
                .display()
                .to_string(),
        )
    })
}

/// `predict --threads V`.
fn predict_case(v: &str) -> Vec<String> {
    let (s2s, _, _) = tiny_runs();
    strings(&["predict", "--model", s2s, &format!("--threads={v}"), "1+2"])
}

/// Integer flags of `eval`: on the seq2seq run, then on the coupled-transformer run, then on
/// the many-operand run (its grid).
const EVAL_INT_FLAGS: &[&str] = &["--n", "--seed", "--threads", "--digits", "--min-digits"];
const EVAL_LENGTH_FLAGS: &[&str] = &["--n", "--threads", "--lengths", "--heatmap"];
const EVAL_GRID_FLAGS: &[&str] = &["--n", "--seed", "--threads", "--lengths"];

fn eval_case(flag: &str, v: &str, long_addition: bool) -> Vec<String> {
    eval_case_on(flag, v, if long_addition { 1 } else { 0 })
}

fn eval_grid_case(flag: &str, v: &str) -> Vec<String> {
    eval_case_on(flag, v, 2)
}

/// `eval` with `flag` attacked on tiny run `which` (0 seq2seq, 1 coupled, 2 many-operand).
fn eval_case_on(flag: &str, v: &str, which: usize) -> Vec<String> {
    let (s2s, lg, many) = tiny_runs();
    let mut a = strings(&["eval", "--model"]);
    if which > 0 {
        a.push(if which == 1 { lg.clone() } else { many.clone() });
        // Few questions at short lengths, unless the flag attacked is one of these.
        for (f, x) in [("--n", "3"), ("--lengths", "3,6")] {
            if f != flag {
                a.extend(strings(&[f, x]));
            }
        }
        match flag {
            // A list: the value alone and after a sane one.
            "--lengths" | "--heatmap" => a.push(format!("{flag}=2,{v}")),
            _ => a.push(format!("{flag}={v}")),
        }
    } else {
        a.push(s2s.clone());
        if flag != "--n" {
            a.extend(strings(&["--n", "20"]));
        }
        if flag != "--threads" {
            a.extend(strings(&["--threads", "1"]));
        }
        a.push(format!("{flag}={v}"));
    }
    a
}

/// Integer flags of `data` and the task they need.
const DATA_INT_FLAGS: &[(&str, &[&str])] = &[
    ("--n", &["--digits", "3"]),
    ("--digits", &[]),
    ("--min-digits", &[]),
    ("--seed", &[]),
    ("--brackets", &["--task", "expression"]),
    ("--terms", &["--task", "expression"]),
    ("--pq-max", &["--task", "pq-system"]),
];

fn data_case(i: usize, v: &str) -> Vec<String> {
    let (flag, task) = DATA_INT_FLAGS[i];
    let mut a = strings(&["data", "--format", "questions"]);
    a.extend(strings(task));
    if flag != "--n" {
        a.extend(strings(&["--n", "5"]));
    }
    a.push(format!("{flag}={v}"));
    a
}

const BENCH_INT_FLAGS: &[&str] = &[
    "--epoch-examples",
    "--batch-size",
    "--threads",
    "--hidden",
    "--layers",
    "--digits",
    "--min-digits",
    "--input-len",
    "--output-len",
    "--embed-dim",
    "--seed",
];

fn bench_case(flag: &str, v: &str) -> Vec<String> {
    let mut a = strings(&["bench"]);
    for (f, x) in [("--seconds", "0.01"), ("--hidden", "4"), ("--threads", "1")] {
        if f != flag {
            a.extend(strings(&[f, x]));
        }
    }
    a.push(format!("{flag}={v}"));
    a
}

/// Sweep flags, and grid axes (`key=value`).
const SWEEP_INT_FLAGS: &[&str] = &["--seeds", "--parallel", "--eval-n"];
const SWEEP_INT_AXES: &[&str] = &["hidden", "digits", "epochs", "batch_size", "size", "layers"];
const SWEEP_FLOAT_AXES: &[&str] = &["lr", "optim.clip_norm", "optim.beta2", "data.val_fraction"];

fn sweep_case(
    dir: &Path,
    flag: Option<(&str, String)>,
    axis: Option<(&str, String)>,
) -> Vec<String> {
    let mut a = strings(&["sweep", "--runs-dir", dir.join("runs").to_str().unwrap()]);
    a.extend(strings(&[
        "--digits",
        "2",
        "--size",
        "100",
        "--epochs",
        "1",
        "--samples",
        "0",
        "--threads",
        "1",
    ]));
    for (f, x) in [("--seeds", "1"), ("--eval-n", "10"), ("--parallel", "1")] {
        if flag.as_ref().is_none_or(|(g, _)| *g != f) {
            a.extend(strings(&[f, x]));
        }
    }
    if let Some((f, x)) = flag {
        a.push(format!("{f}={x}"));
    }
    let grid = match axis {
        Some((k, x)) => format!("{k}={x}"),
        None => "hidden=4".into(),
    };
    a.extend(["--grid".into(), grid]);
    if !a.iter().any(|g| g.starts_with("hidden=")) {
        a.extend(strings(&["--hidden", "4"]));
    }
    a
}

/// `experiment run --quick` flags, by the experiment (run kind) that takes them.
const EXPERIMENT_INT_FLAGS: &[(&str, &[&str])] = &[
    (
        "keras-addition",
        &[
            "--digits",
            "--min-digits",
            "--size",
            "--input-len",
            "--output-len",
            "--hidden",
            "--layers",
            "--embed-dim",
            "--seed",
            "--epochs",
            "--batch-size",
            "--patience",
            "--threads",
            "--samples",
        ],
    ),
    (
        "expression-3terms",
        &["--heads", "--ffn", "--brackets", "--hidden", "--layers"],
    ),
    (
        "length-generalisation",
        &[
            "--digits",
            "--min-digits",
            "--hidden",
            "--layers",
            "--heads",
            "--ffn",
            "--local-window",
            "--seed",
            "--steps",
            "--batch-size",
            "--threads",
            "--pad-to",
        ],
    ),
    (
        "length-generalisation-gru",
        &[
            "--digits",
            "--min-digits",
            "--hidden",
            "--embed-dim",
            "--seed",
            "--steps",
            "--batch-size",
            "--threads",
        ],
    ),
    (
        "brownlee-mapping",
        &["--size", "--seed", "--epochs", "--batch-size"],
    ),
    (
        "many-operand-addition",
        &[
            "--digits",
            "--min-digits",
            "--layers",
            "--heads",
            "--ffn",
            "--local-window",
            "--seed",
            "--steps",
            "--batch-size",
            "--threads",
        ],
    ),
    (
        "multiplication",
        &[
            "--digits",
            "--min-digits",
            "--layers",
            "--heads",
            "--local-window",
            "--seed",
            "--steps",
            "--batch-size",
            "--threads",
        ],
    ),
];

const EXPERIMENT_FLOAT_FLAGS: &[(&str, &[&str])] = &[
    (
        "keras-addition",
        &["--lr", "--stop-at-exact", "--uniform-fraction"],
    ),
    (
        "length-generalisation",
        &["--lr", "--train-seconds", "--pad-fraction"],
    ),
    ("length-generalisation-gru", &["--lr", "--stress-fraction"]),
    (
        "many-operand-addition",
        &["--lr", "--stress-fraction", "--pad-fraction"],
    ),
];

fn experiment_case(name: &str, flag: &str, v: &str, dir: &Path) -> Vec<String> {
    let mut a = strings(&["experiment", "run", name, "--quick", "--runs-dir"]);
    a.push(dir.join("runs").display().to_string());
    if flag != "--threads" && name != "brownlee-mapping" {
        a.extend(strings(&["--threads", "1"]));
    }
    a.push(format!("{flag}={v}"));
    a
}

/// Every integer flag of every command at the edges (0, 1, 2^30 (the question limit), 2^32,
/// 2^63 - 1, u64::MAX): always run.
#[test]
fn every_integer_flag_of_every_command_at_the_edges() {
    let limit = Duration::from_secs(10);
    let mut cases = 0;
    for v in [0, 1, 1u64 << 30, 1u64 << 32, i64::MAX as u64, u64::MAX] {
        let quiet = real_work_int(v);
        let s = v.to_string();
        let dir = scratch();
        attack(&predict_case(&s), dir.path(), limit, quiet);
        for flag in EVAL_INT_FLAGS {
            attack(&eval_case(flag, &s, false), dir.path(), limit, quiet);
        }
        for flag in EVAL_LENGTH_FLAGS {
            attack(&eval_case(flag, &s, true), dir.path(), limit, quiet);
        }
        for flag in EVAL_GRID_FLAGS {
            attack(&eval_grid_case(flag, &s), dir.path(), limit, quiet);
        }
        for i in 0..DATA_INT_FLAGS.len() {
            attack(&data_case(i, &s), dir.path(), limit, quiet);
        }
        for flag in BENCH_INT_FLAGS {
            attack(&bench_case(flag, &s), dir.path(), limit, quiet);
        }
        for flag in SWEEP_INT_FLAGS {
            let d = scratch();
            attack(
                &sweep_case(d.path(), Some((flag, s.clone())), None),
                d.path(),
                limit,
                quiet,
            );
        }
        for axis in SWEEP_INT_AXES {
            let d = scratch();
            attack(
                &sweep_case(d.path(), None, Some((axis, s.clone()))),
                d.path(),
                limit,
                quiet,
            );
        }
        for (name, flags) in EXPERIMENT_INT_FLAGS {
            for flag in *flags {
                let d = scratch();
                attack(
                    &experiment_case(name, flag, &s, d.path()),
                    d.path(),
                    limit,
                    quiet,
                );
                cases += 1;
            }
        }
        cases += 1 + EVAL_INT_FLAGS.len() + EVAL_LENGTH_FLAGS.len() + DATA_INT_FLAGS.len();
        cases += BENCH_INT_FLAGS.len() + SWEEP_INT_FLAGS.len() + SWEEP_INT_AXES.len();
    }
    assert!(cases > 300, "{cases}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(24)))]

    #[test]
    fn threads_of_predict(v in any_int()) {
        let dir = scratch();
        attack(&predict_case(&v.to_string()), dir.path(), Duration::from_secs(5), false);
    }

    #[test]
    fn integer_flags_of_eval(flag in 0..EVAL_INT_FLAGS.len() + EVAL_LENGTH_FLAGS.len() + EVAL_GRID_FLAGS.len(), v in any_int()) {
        let dir = scratch();
        let (i, l) = (EVAL_INT_FLAGS.len(), EVAL_LENGTH_FLAGS.len());
        let args = if flag < i {
            eval_case(EVAL_INT_FLAGS[flag], &v.to_string(), false)
        } else if flag < i + l {
            eval_case(EVAL_LENGTH_FLAGS[flag - i], &v.to_string(), true)
        } else {
            eval_grid_case(EVAL_GRID_FLAGS[flag - i - l], &v.to_string())
        };
        attack(&args, dir.path(), Duration::from_secs(5), real_work_int(v));
    }

    #[test]
    fn sharpen_of_eval(x in any_float()) {
        let dir = scratch();
        attack(&eval_case("--sharpen", &format!("{x}"), true), dir.path(), Duration::from_secs(5), real_work_float(x));
    }

    #[test]
    fn integer_flags_of_data(i in 0..DATA_INT_FLAGS.len(), v in any_int()) {
        let dir = scratch();
        attack(&data_case(i, &v.to_string()), dir.path(), Duration::from_secs(5), false);
    }

    #[test]
    fn numeric_flags_of_bench(flag in 0..BENCH_INT_FLAGS.len(), v in any_int(), x in any_float()) {
        let dir = scratch();
        attack(&bench_case(BENCH_INT_FLAGS[flag], &v.to_string()), dir.path(), Duration::from_secs(5), real_work_int(v));
        attack(&bench_case("--seconds", &format!("{x}")), dir.path(), Duration::from_secs(5), real_work_float(x));
    }

    #[test]
    fn numeric_flags_and_grid_values_of_sweep(flag in 0..SWEEP_INT_FLAGS.len(), v in any_int(),
                                              axis in 0..SWEEP_INT_AXES.len(), w in any_int(),
                                              faxis in 0..SWEEP_FLOAT_AXES.len(), x in any_float(),
                                              target in any_float()) {
        let limit = Duration::from_secs(5);
        for (f, a) in [
            (Some((SWEEP_INT_FLAGS[flag], v.to_string())), None),
            (None, Some((SWEEP_INT_AXES[axis], w.to_string()))),
            (None, Some((SWEEP_FLOAT_AXES[faxis], toml_float(x)))),
            (Some(("--target", format!("{target}"))), None),
        ] {
            let d = scratch();
            attack(&sweep_case(d.path(), f, a), d.path(), limit, false);
        }
    }

    #[test]
    fn numeric_flags_of_experiment_run_quick(e in 0..EXPERIMENT_INT_FLAGS.len(), flag in 0..64usize, v in any_int(),
                                             fe in 0..EXPERIMENT_FLOAT_FLAGS.len(), fflag in 0..64usize, x in any_float()) {
        let limit = Duration::from_secs(5);
        let (name, flags) = EXPERIMENT_INT_FLAGS[e];
        let d = scratch();
        attack(&experiment_case(name, flags[flag % flags.len()], &v.to_string(), d.path()), d.path(), limit, false);
        let (name, flags) = EXPERIMENT_FLOAT_FLAGS[fe];
        let d = scratch();
        attack(&experiment_case(name, flags[fflag % flags.len()], &format!("{x}"), d.path()), d.path(), limit, false);
    }
}
