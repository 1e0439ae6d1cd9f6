//! Tests of `sweep`.

use super::*;

#[test]
fn axes_parse_aliases_paths_and_values() {
    let a = Axis::parse("hidden=32,64").unwrap();
    assert_eq!(a.paths, ["model.hidden"]);
    assert_eq!(a.values, ["32", "64"]);
    assert_eq!(Axis::parse("optim.lr=0.001").unwrap().paths, ["optim.lr"]);
    assert_eq!(
        Axis::parse("terms=2,3").unwrap().paths,
        ["task.terms_min", "task.terms_max"]
    );
    for bad in ["hidden", "hidden=", "colour=red", "hidden=3,3"] {
        assert!(Axis::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn expand_sets_values_rederives_widths_and_checks_every_cell() {
    let mut base = ExperimentConfig::default();
    base.task.digits = 2;
    base.data.size = 4000;
    base.build().unwrap(); // widths resolved for 2 digits
    let axes = [
        Axis::parse("digits=2,4").unwrap(),
        Axis::parse("cell=lstm,gru").unwrap(),
    ];
    let jobs = expand(&base, &axes, 2).unwrap();
    assert_eq!(jobs.len(), 8);
    assert_eq!(jobs[0].id, "digits=2,cell=lstm,seed=1337");
    assert_eq!(jobs[3].id, "digits=2,cell=gru,seed=1338");
    assert_eq!(jobs[7].cfg.task.digits, 4);
    assert_eq!(jobs[7].cfg.model.cell, crate::nn::rnn::CellKind::Gru);
    let (_, m) = jobs[7].cfg.clone().build().unwrap();
    assert_eq!(
        m.t_in, 9,
        "4+4 digits and a plus: widths follow the cell's task"
    );
    // A cell that cannot run is named before anything trains.
    let e = expand(&base, &[Axis::parse("size=100,9000").unwrap()], 1).unwrap_err();
    assert!(
        e.to_string().contains("size=9000") && e.to_string().contains("distinct"),
        "{e}"
    );
    let e = expand(&base, &[Axis::parse("hidden=8,0").unwrap()], 1).unwrap_err();
    assert!(e.to_string().contains("hidden=0"), "{e}");
    let e = expand(&base, &[Axis::parse("cell=lstm,tree").unwrap()], 1).unwrap_err();
    assert!(e.to_string().contains("cell=tree"), "{e}");
}

#[test]
fn summaries_give_mean_spread_and_heatmap_cells() {
    let r = |cell: &str, seed, exact: Option<f64>, reach: Option<usize>| RunResult {
        id: format!("{cell},{seed}"),
        cell: vec![cell.to_string()],
        seed,
        error: None,
        params: 1,
        epochs: 10,
        seconds: 5.0,
        best_val_exact: exact.unwrap_or(0.0),
        fresh_exact: exact,
        fresh_char: exact,
        fresh_n: 100,
        epochs_to_target: reach,
        seconds_to_target: reach.map(|e| e as f64),
        kernel: None,
    };
    let res = [
        r("32", 1, Some(0.5), None),
        r("32", 2, Some(0.7), None),
        r("64", 1, Some(0.99), Some(4)),
        r("64", 2, None, None),
    ];
    let s = summarise(&res);
    assert_eq!(s.len(), 2);
    assert!((s[0].exact_mean.unwrap() - 0.6).abs() < 1e-12);
    assert!((s[0].exact_sd.unwrap() - 0.1414213562).abs() < 1e-9);
    assert_eq!((s[1].failed, s[1].reached), (1, 1));
    assert_eq!(s[1].epochs_to_target, Some(4.0));
    let axes = [Axis::parse("hidden=32,64").unwrap()];
    let t = table(&axes, &s, 0.99);
    assert!(t.contains("| 32 | 2 | 0.6000 ± 0.1414 |"), "{t}");
    assert!(t.contains("2 (1 failed)"), "{t}");
    let (rows, cols, vals, texts) = heatmap_grid(&axes, &s);
    assert_eq!((rows.len(), cols.len()), (1, 2));
    assert_eq!(vals[0][1], Some(0.99));
    assert_eq!(texts[0][0], "0.600±0.141");
}

#[test]
fn kernel_levels_are_noted_only_when_runs_differ() {
    let r = |id: &str, kernel: Option<&str>| RunResult {
        id: id.into(),
        cell: vec![],
        seed: 1,
        error: None,
        params: 1,
        epochs: 1,
        seconds: 1.0,
        best_val_exact: 1.0,
        fresh_exact: Some(1.0),
        fresh_char: Some(1.0),
        fresh_n: 1,
        epochs_to_target: None,
        seconds_to_target: None,
        kernel: kernel.map(String::from),
    };
    assert_eq!(
        kernel_note(&[r("a", Some("avx2")), r("b", Some("avx2"))]),
        None
    );
    assert_eq!(kernel_note(&[r("a", None), r("b", Some("avx2"))]), None);
    let note = kernel_note(&[
        r("a", Some("avx2")),
        r("b", Some("avx512")),
        r("c", Some("avx2")),
    ])
    .unwrap();
    assert!(note.contains("avx2: 2, avx512: 1"), "{note}");
    // Results written before the kernel was recorded still read.
    let old = r#"{"id":"x","cell":[],"seed":1,"error":null,"params":1,"epochs":1,"seconds":1.0,"best_val_exact":1.0,"fresh_exact":1.0,"fresh_char":1.0,"fresh_n":1,"epochs_to_target":null,"seconds_to_target":null}"#;
    let parsed: RunResult = serde_json::from_str(old).unwrap();
    assert_eq!(parsed.kernel, None);
}

#[test]
fn a_cell_request_travels_as_json_unchanged_and_checks_its_directory() {
    let mut base = ExperimentConfig::default();
    base.task.digits = 2;
    base.data.size = 500;
    let jobs = expand(&base, &[Axis::parse("hidden=4,8").unwrap()], 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        dir: dir.path().to_path_buf(),
        parallel: 1,
        threads: 1,
        eval_n: 10,
        target: 0.5,
    };
    let req = ray::CellRequest::new(&jobs[1], &opts).unwrap();
    let back: ray::CellRequest =
        serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
    assert_eq!(back, req);
    // No sweep.json: the directory is not this node's, and nothing is trained.
    let e = back.check().unwrap_err().to_string();
    assert!(e.contains("shared") || e.contains("mounts"), "{e}");
    let spec = Spec {
        axes: vec![],
        seeds: 1,
        eval_n: 10,
        target: 0.5,
        base,
    };
    prepare(&spec, dir.path()).unwrap();
    back.check().unwrap();
}
