//! `seqcalc export --format onnx`: the file it writes, and its errors (one line, non-zero exit,
//! nothing overwritten without --force).

mod common;

use common::{run, text};
use prost::Message;
use seqcalc::export::onnx_proto::ModelProto;
use std::path::Path;

/// A tiny run of `flags` trained in a second or two.
fn train(root: &Path, name: &str, flags: &[&str]) -> std::path::PathBuf {
    let runs = root.join("runs");
    let mut args = vec![
        "train",
        "--runs-dir",
        runs.to_str().unwrap(),
        "--name",
        name,
        "--digits",
        "2",
        "--size",
        "500",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--seed",
        "5",
        "--samples",
        "0",
    ];
    args.extend_from_slice(flags);
    let o = run(&args);
    assert!(o.status.success(), "{}", text(&o));
    runs.join(name)
}

fn export(run_dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "export",
        "--format",
        "onnx",
        run_dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// The one line on stderr of a failed command.
fn one_error_line(o: &std::process::Output) -> String {
    assert!(!o.status.success(), "{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn recurrent_runs_export_to_onnx_graphs_on_its_recurrent_operators() {
    let dir = tempfile::tempdir().unwrap();
    for (name, flags, op, steps) in [
        ("lstm", &[][..], "LSTM", 2),
        ("gru", &["--cell", "gru", "--layers", "2"][..], "GRU", 3),
        (
            "rnn",
            &["--cell", "simplernn", "--input", "embedding"][..],
            "RNN",
            2,
        ),
        // Greedy decoding unrolled: the encoder plus one node per output step.
        (
            "teacher",
            &["--decoder", "teacher-forced", "--attention"][..],
            "LSTM",
            1 + 4,
        ),
    ] {
        let run_dir = train(dir.path(), name, flags);
        let out = dir.path().join(format!("{name}.onnx"));
        let o = export(&run_dir, &out, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let m = ModelProto::decode(&std::fs::read(&out).unwrap()[..]).unwrap();
        assert_eq!(m.opset_import[0].version, seqcalc::export::onnx::OPSET);
        let g = m.graph.unwrap();
        let ops = g.node.iter().filter(|n| n.op_type == op).count();
        assert_eq!(ops, steps, "{name}: {op} nodes");
        assert_eq!(g.input[0].name, "question");
        let outputs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(outputs, ["logits", "probs"]);
        // Every node input is a graph input, an initialiser or an earlier node's output.
        let mut known: Vec<&str> = vec!["question", ""];
        known.extend(g.initializer.iter().map(|t| t.name.as_str()));
        for n in &g.node {
            for i in &n.input {
                assert!(
                    known.contains(&i.as_str()),
                    "{name}: {} reads {i} before it exists",
                    n.op_type
                );
            }
            known.extend(n.output.iter().map(String::as_str));
        }
        let codec = m
            .metadata_props
            .iter()
            .find(|e| e.key == "seqcalc.codec")
            .expect("the codec in the metadata");
        assert!(codec.value.contains("\"alphabet\""), "{}", codec.value);
    }
}

#[test]
fn transformer_runs_export_with_greedy_steps_unrolled() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = train(
        dir.path(),
        "transformer",
        &["--arch", "transformer", "--heads", "2", "--layers", "2"],
    );
    let out = dir.path().join("transformer.onnx");
    let o = export(&run_dir, &out, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    let t_out = cfg["codec"]["output_len"].as_u64().unwrap() as usize;
    let g = ModelProto::decode(&std::fs::read(&out).unwrap()[..])
        .unwrap()
        .graph
        .unwrap();
    // One argmax per answer step, each step a causal pass through both blocks.
    let count = |op: &str| g.node.iter().filter(|n| n.op_type == op).count();
    assert_eq!(count("ArgMax"), t_out);
    assert_eq!(count("Softmax"), t_out * (2 + 1));
    let outputs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["logits", "probs"]);
}

#[test]
fn export_errors_are_one_line_and_overwrite_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = train(dir.path(), "small", &[]);
    let out = dir.path().join("model.onnx");

    // An existing file is left alone without --force, replaced with it.
    std::fs::write(&out, b"keep me").unwrap();
    let e = one_error_line(&export(&run_dir, &out, &[]));
    assert!(e.contains("exists; pass --force"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let o = export(&run_dir, &out, &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(std::fs::read(&out).unwrap().len() > 1000);

    // Not a run directory.
    let e = one_error_line(&export(
        &dir.path().join("nope"),
        &dir.path().join("a.onnx"),
        &[],
    ));
    assert!(e.contains("nope"), "{e}");
    assert!(!dir.path().join("a.onnx").exists());

    // A run kind ONNX export does not cover.
    let runs = dir.path().join("runs");
    let o = run(&[
        "experiment",
        "run",
        "--quick",
        "brownlee-mlp",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let e = one_error_line(&export(
        &runs.join("brownlee-mlp-quick"),
        &dir.path().join("b.onnx"),
        &[],
    ));
    assert!(e.contains("regression run"), "{e}");

    // A model the export does not cover (a masked encoder).
    let masked = train(dir.path(), "masked", &["--mask"]);
    let e = one_error_line(&export(&masked, &dir.path().join("c.onnx"), &[]));
    assert!(e.contains("masked"), "{e}");

    // An output that cannot be written: a missing directory, a directory.
    let e = one_error_line(&export(
        &run_dir,
        &dir.path().join("no/such/dir/m.onnx"),
        &[],
    ));
    assert!(e.contains("m.onnx"), "{e}");
    let e = one_error_line(&export(&run_dir, dir.path(), &[]));
    assert!(e.contains("is a directory"), "{e}");

    // Nothing but the files asked for: no temporaries left behind.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
