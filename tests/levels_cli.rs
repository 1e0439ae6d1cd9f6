//! The two-level scratchpad runs (many-operand addition, multiplication) through the command
//! line: a small many-operand model trained from a config answers more and longer operands than
//! it saw, scored by `eval`'s grid and by `predict`; the quick experiments print their grids
//! and verdicts; bad grid requests get one line and exit code 2.

mod common;

use common::{bin, text};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// 2..5 operands of 1..4 digits, 3,000 steps on two threads (seconds).
const SMALL: &str = r#"
kind = "coupled-transformer"
name = "small-sums"
seed = 3
[lengthgen]
task = "many-operand-addition"
[lengthgen.model]
dim = 48
heads = 2
ffn = 128
layers = 1
local_window = 2
[lengthgen.train]
min_digits = 1
max_digits = 4
max_operands = 5
batch_size = 64
steps = 3000
lr = 0.003
threads = 2
eval_every = 3000
eval_lengths = [4]
eval_count = 10
"#;

fn trained() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let cfg = root.join("small.toml");
        std::fs::write(&cfg, SMALL).unwrap();
        let o = bin()
            .args(["train", "--config", cfg.to_str().unwrap(), "--runs-dir"])
            .arg(root.join("runs"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        root.join("runs").join("small-sums")
    })
}

#[test]
fn a_small_model_answers_more_and_longer_operands_in_eval_and_predict() {
    let run = trained();
    let o = bin()
        .args(["eval", "--model", run.to_str().unwrap()])
        .args(["--lengths", "3,8,12", "--n", "20", "--stress", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cells = v["cells"].as_array().unwrap();
    // Rows are operand counts, columns operand lengths: 3 x 3 cells.
    let rc: Vec<(u64, u64)> = cells
        .iter()
        .map(|c| (c["row"].as_u64().unwrap(), c["col"].as_u64().unwrap()))
        .collect();
    assert_eq!(rc.len(), 9);
    assert!(rc.contains(&(12, 12)) && rc.contains(&(3, 8)));
    for c in cells {
        let (n, right) = (
            c["random_n"].as_u64().unwrap(),
            c["random_right"].as_u64().unwrap(),
        );
        let (sn, sr) = (
            c["stress_n"].as_u64().unwrap(),
            c["stress_right"].as_u64().unwrap(),
        );
        assert_eq!(n, 20);
        assert!(sn > 0);
        // Trained on 2..5 operands of 1..4 digits; asked up to 12 of 12.
        assert!(right + sr >= (n + sn) * 9 / 10, "cell {c}");
    }
    assert!(run.join("grid.svg").is_file() && run.join("grid.png").is_file());

    let o = bin()
        .args(["predict", "--model", run.to_str().unwrap(), "--jsonl"])
        .args(["12+345+6789+99999", "99999999+1+1+1+1+1+1+1+1+1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["output"], "107145");
    assert_eq!(lines[1]["output"], "100000008");
    // The working: one running sum per operand after the first.
    assert_eq!(lines[0]["work"].as_str().unwrap().split(';').count(), 3);
}

#[test]
fn bad_grid_requests_get_one_line_and_exit_2() {
    let run = trained();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--lengths", "1,4"],
            "operand counts (the rows) start at 2",
        ),
        (&["--lengths", "2,1001"], "1001 is not in 1..=1000"),
        (&["--lengths", "0"], "0 is not in 1..=1000"),
        (&["--n", "0"], "--n 0"),
        (&["--n", "5000", "--lengths", "100"], "digits a cell"),
        (&["--exhaustive"], "takes --lengths"),
        (&["--heatmap", "2,3"], "takes --lengths"),
        (&["--digits", "3"], "takes --lengths"),
    ];
    for (args, want) in cases {
        let o = bin()
            .args(["eval", "--model", run.to_str().unwrap()])
            .args(*args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn the_quick_experiments_print_their_grids_and_verdicts() {
    let root = tempfile::tempdir().unwrap();
    for (name, rows) in [
        ("many-operand-addition", [2, 3, 6]),
        ("multiplication", [2, 4, 0]),
    ] {
        let o = bin()
            .args(["experiment", "run", name, "--quick", "--runs-dir"])
            .arg(root.path())
            .args(["--threads", "1"])
            .output()
            .unwrap();
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(out.contains("exact match of the final answer"), "{out}");
        assert!(out.contains(&format!("Verdict: {name}-quick")), "{out}");
        let dir = root.path().join(format!("{name}-quick"));
        let cells: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(dir.join("grid.json")).unwrap()).unwrap();
        let want: Vec<u64> = rows.iter().filter(|&&r| r > 0).map(|&r| r as u64).collect();
        let mut got: Vec<u64> = cells.iter().map(|c| c["row"].as_u64().unwrap()).collect();
        got.dedup();
        assert_eq!(got, want, "{name}");
        assert!(dir.join("grid.png").is_file());
    }
}
