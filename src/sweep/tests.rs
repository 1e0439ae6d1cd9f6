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
