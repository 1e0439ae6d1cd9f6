//! End-to-end tests of a length-generalisation run: `train --config` with a `[lengthgen]`
//! config, then `predict` (arguments and --jsonl) and `eval --lengths --stress` on it, and clear
//! errors with exit code 2 for impossible configs and damaged weights.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

mod common;
use common::{bin, run, text};

/// A 48-wide transformer on 1..3-digit addition: learns it in a few seconds.
const TINY: &str = r#"
name = "lg-tiny"
seed = 1337

[lengthgen.model]
dim = 48
heads = 2
ffn = 128
layers = 1

[lengthgen.train]
max_digits = 3
batch_size = 64
steps = 1500
lr = 0.003
threads = 2
eval_every = 500
eval_lengths = [3, 6]
eval_count = 20
"#;

fn trained() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = tempfile::tempdir().unwrap().keep();
        let cfg = root.join("tiny.toml");
        std::fs::write(&cfg, TINY).unwrap();
        let runs = root.join("runs");
        let o = run(&[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("trained 1500 steps"), "{}", text(&o));
        runs.join("lg-tiny")
    })
}

#[test]
fn predict_answers_typed_questions_and_reports_bad_ones() {
    let dir = trained().to_str().unwrap();
    let o = run(&["predict", "--model", dir, "123+456", " 99 + 1 "]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("123+456 = 579  ✓"), "{out}");
    assert!(out.contains("99 + 1 = 100  ✓"), "{out}");
    let o = run(&["predict", "--model", dir, "12+3", "1x+2", "1+2+3"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("12+3 = 15") && t.contains("unknown character 'x' at column 2"),
        "{t}"
    );
    assert!(t.contains("found 2 '+'"), "{t}");

    let mut child = bin()
        .args(["predict", "--model", dir, "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: &[u8] = b"7+8\n\xff\xfe\n\n5+5\r\n";
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["output"], "15");
    assert_eq!(lines[0]["correct"], true);
    assert!(lines[1]["error"].as_str().unwrap().contains("UTF-8"));
    assert!(lines[2]["error"].as_str().unwrap().contains("empty"));
    assert_eq!(lines[3]["output"], "10");
}

#[test]
fn eval_reports_exact_match_by_length_with_stress_sets() {
    let dir = trained().to_str().unwrap();
    let o = run(&[
        "eval",
        "--model",
        dir,
        "--lengths",
        "3,5",
        "--stress",
        "--n",
        "40",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    // Per length: random, stress, and the three stress parts.
    assert_eq!(rows.len(), 10, "{v}");
    let random3 = &rows[0];
    assert_eq!(
        (random3["length"].as_u64(), random3["n"].as_u64()),
        (Some(3), Some(40))
    );
    assert!(random3["exact"].as_f64().unwrap() >= 0.95, "{v}");
    let lo = random3["exact_lo"].as_f64().unwrap();
    assert!(lo > 0.8 && lo <= random3["exact"].as_f64().unwrap());
    assert_eq!(rows[1]["set"], "stress");
    assert_eq!(rows[1]["n"], 45);
    // The same seed gives the same report.
    let again = run(&[
        "eval",
        "--model",
        dir,
        "--lengths",
        "3,5",
        "--stress",
        "--n",
        "40",
        "--json",
    ]);
    let strip = |bytes: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        for r in v["results"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("secs");
        }
        v
    };
    assert_eq!(strip(&again.stdout), strip(&o.stdout));
    // A table for people.
    let o = run(&["eval", "--model", dir, "--lengths", "4", "--n", "10"]);
    assert!(
        text(&o).contains("95% CI") && text(&o).contains("random"),
        "{}",
        text(&o)
    );
    // Exact match over pairs of operand lengths, as numbers and as a picture.
    let o = run(&[
        "eval",
        "--model",
        dir,
        "--heatmap",
        "2,4",
        "--n",
        "20",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["results"].as_array().unwrap().is_empty(), "{v}");
    let cells = v["length_pairs"].as_array().unwrap();
    let pairs: Vec<(u64, u64)> = cells
        .iter()
        .map(|c| (c["len_a"].as_u64().unwrap(), c["len_b"].as_u64().unwrap()))
        .collect();
    assert_eq!(pairs, [(2, 2), (2, 4), (4, 2), (4, 4)]);
    // Lengths 2 and 4 lie inside the training range: the model gets nearly all of them.
    let right: u64 = cells.iter().map(|c| c["right"].as_u64().unwrap()).sum();
    assert!(right >= 70, "{v}");
    for f in ["length-pairs.svg", "length-pairs.png"] {
        assert!(trained().join(f).is_file(), "{f}");
    }
}

#[test]
fn impossible_configs_and_damaged_runs_exit_with_code_2() {
    let dir = trained();
    let o = run(&["eval", "--model", dir.to_str().unwrap(), "--lengths", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--lengths: 0"), "{}", text(&o));

    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("bad.toml");
    std::fs::write(&cfg, TINY.replace("max_digits = 3", "max_digits = 0")).unwrap();
    let o = run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--runs-dir",
        root.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("operand lengths"), "{}", text(&o));
    std::fs::write(&cfg, TINY.replace("heads = 2", "heads = 5")).unwrap();
    let o = run(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--runs-dir",
        root.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("does not divide"), "{}", text(&o));

    // A copy of the run with one changed weight byte.
    let copy = root.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["config.json", "weights.safetensors"] {
        std::fs::copy(dir.join(f), copy.join(f)).unwrap();
    }
    let w = copy.join("weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    std::fs::write(&w, &bytes).unwrap();
    let o = run(&["predict", "--model", copy.to_str().unwrap(), "1+2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("checksum mismatch"), "{}", text(&o));
    bytes.truncate(n / 2);
    std::fs::write(&w, &bytes).unwrap();
    let o = run(&["eval", "--model", copy.to_str().unwrap(), "--lengths", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("weights.safetensors"), "{}", text(&o));
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("resume.toml");
    let text_cfg = TINY
        .replace("name = \"lg-tiny\"", "name = \"lg-resume\"")
        .replace("steps = 1500", "steps = 4000")
        .replace("eval_every = 500", "eval_every = 100");
    std::fs::write(&cfg, text_cfg).unwrap();
    let runs = root.path().join("runs");
    let mut child = bin()
        .args([
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--runs-dir",
            runs.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = runs.join("lg-resume");
    let ck = dir.join("checkpoint").join("state.safetensors");
    let t0 = std::time::Instant::now();
    // The first checkpoint is written before the config: a run killed between the two has not
    // started, and cannot be resumed.
    while !(ck.exists() && dir.join("config.json").exists()) {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = run(&["train", "--resume", dir.to_str().unwrap()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("resumed after step"), "{out}");
    assert!(out.contains("trained 4000 steps"), "{out}");
    // The run answers after resuming.
    let o = run(&["predict", "--model", dir.to_str().unwrap(), "123+989"]);
    assert!(
        o.status.success() && text(&o).contains("123+989"),
        "{}",
        text(&o)
    );
}
