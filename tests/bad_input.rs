//! Bad input never panics: arbitrary text into the config loader, the codec and the question
//! parser, arbitrary bytes and every truncation of a real weights file into the model loader.
//! Each gives an error value (the CLI turns it into one line and exit code 2 or 1).
//! A longer run: `PROPTEST_CASES=100000 cargo test --release --test bad_input`.

use proptest::prelude::*;
use seqcalc::codec::Codec;
use seqcalc::config::ExperimentConfig;
use seqcalc::model::{ModelConfig, Seq2Seq};
use seqcalc::rundir;
use seqcalc::task::{self, TaskConfig};

/// 2,000 cases per property by default; PROPTEST_CASES raises it for a longer run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// A scratch directory in memory where there is one (these tests write a file per case; on a
/// disk, rewriting a file thousands of times costs seconds).
fn scratch() -> tempfile::TempDir {
    match tempfile::tempdir_in("/dev/shm") {
        Ok(d) => d,
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

fn default_codec() -> Codec {
    let mut cfg = ExperimentConfig::default();
    let (codec, _) = cfg.build().unwrap();
    codec
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn config_loader_never_panics(text in "\\PC{0,200}") {
        if let Ok(mut cfg) = ExperimentConfig::parse(&text) {
            let _ = cfg.build();
        }
    }

    #[test]
    fn config_loader_never_panics_on_config_shaped_text(
        section in prop::sample::select(vec!["task", "codec", "data", "model", "optim", "train"]),
        key in "[a-z_]{1,12}",
        value in prop::sample::select(vec!["0", "-1", "1e400", "\"lstm\"", "\"\"", "true", "[1,2]", "18446744073709551615", "nan", "0.5"]),
    ) {
        let text = format!("[{section}]\n{key} = {value}\n");
        if let Ok(mut cfg) = ExperimentConfig::parse(&text) {
            let _ = cfg.build();
        }
    }

    #[test]
    fn codec_and_question_parser_never_panic(q in "\\PC{0,40}", bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let codec = default_codec();
        let mut out = vec![0u8; codec.input_len()];
        let _ = codec.encode_input(&q, &mut out);
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        let _ = codec.encode_input(&lossy, &mut out);
        let _ = task::solve(&TaskConfig::default(), &q);
        let _ = task::solve(&TaskConfig::default(), &lossy);
        let pq = TaskConfig { kind: task::TaskKind::PqSystem, pq_max: 20, ..TaskConfig::default() };
        let _ = task::solve(&pq, &q);
        let expr = TaskConfig { kind: task::TaskKind::Expression, terms_max: 4, brackets: 2, ..TaskConfig::default() };
        let _ = task::solve(&expr, &q);
        let _ = task::solve(&expr, &lossy);
    }

    #[test]
    fn model_loader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let dir = scratch();
        std::fs::write(dir.path().join(rundir::WEIGHTS), &bytes).unwrap();
        let m = Seq2Seq::new(&ModelConfig { hidden: 2, ..Default::default() }, 12, 7, 4).unwrap();
        prop_assert!(rundir::load_weights(dir.path(), &m).is_err());
    }
}

#[test]
fn every_truncation_and_flipped_byte_of_a_weights_file_is_an_error_naming_the_file() {
    let dir = scratch();
    let m = Seq2Seq::new(
        &ModelConfig {
            hidden: 2,
            ..Default::default()
        },
        12,
        7,
        4,
    )
    .unwrap();
    rundir::save_weights(dir.path(), &m, &m.init_params(1)).unwrap();
    let good = std::fs::read(dir.path().join(rundir::WEIGHTS)).unwrap();
    for cut in 0..good.len() {
        std::fs::write(dir.path().join(rundir::WEIGHTS), &good[..cut]).unwrap();
        let e = rundir::load_weights(dir.path(), &m)
            .expect_err("a truncated file must not load")
            .to_string();
        assert!(
            e.contains("weights.safetensors") && !e.contains('\n'),
            "cut {cut}: {e}"
        );
    }
    // Every byte changed in three ways: an error naming the file (the checksum catches changed
    // data and metadata), or, where the byte does not matter (the header's padding turned into
    // other whitespace), exactly the same weights. Never different weights without an error.
    let want: Vec<f32> = m.init_params(1);
    let mut caught = 0;
    for at in 0..good.len() {
        for mask in [0x01u8, 0x5a, 0xff] {
            let mut bad = good.clone();
            bad[at] ^= mask;
            std::fs::write(dir.path().join(rundir::WEIGHTS), &bad).unwrap();
            match rundir::load_weights(dir.path(), &m) {
                Err(e) => {
                    let e = e.to_string();
                    assert!(
                        e.contains("weights.safetensors") && !e.contains('\n'),
                        "flip {mask:#x} at {at}: {e}"
                    );
                    caught += 1;
                }
                Ok(p) => assert!(
                    p == want,
                    "flip {mask:#x} at {at} loaded different weights without an error"
                ),
            }
        }
    }
    assert!(
        caught > good.len() * 3 * 9 / 10,
        "{caught} of {}",
        good.len() * 3
    );
}
