//! The mean loss of the true working of some questions under a two-level scratchpad run's
//! weights, as seqcalc's training step computes it (`CoupledAdditionEngine::train_rows`): what
//! `bench/reference/pytorch_levels.py --loss` is compared with.
//!
//! ```sh
//! cargo run --release --example levels_loss -- runs/multiplication 1234*567 4321*765
//! ```

use seqcalc::codec::levels::{parse_question, sequence};
use seqcalc::config::long_addition::LongTask;
use seqcalc::run::Run;

fn loss(args: &[String]) -> Result<f64, String> {
    let (dir, questions) = match args {
        [dir, qs @ ..] if !qs.is_empty() => (dir, qs),
        _ => return Err("usage: levels_loss RUN QUESTION... (questions of one shape)".into()),
    };
    let mut run = Run::load(std::path::Path::new(dir), 1).map_err(|e| e.to_string())?;
    let Run::CoupledTransformer { run, engine } = &mut run else {
        return Err(format!("{dir} is not a coupled-transformer run"));
    };
    let product = match run.cfg.lengthgen.task {
        LongTask::Multiplication => true,
        LongTask::ManyOperandAddition => false,
        LongTask::Addition => return Err(format!("{dir} is not a two-level scratchpad run")),
    };
    let qs = questions
        .iter()
        .map(|q| parse_question(q, product))
        .collect::<Result<Vec<_>, _>>()?;
    if qs.iter().any(|q| q.shape() != qs[0].shape()) {
        return Err("the questions must share one shape (operand count and length)".into());
    }
    let seqs: Vec<_> = qs.iter().map(sequence).collect();
    let flat: Vec<u8> = seqs.iter().flat_map(|s| s.tokens.iter().copied()).collect();
    let l = &seqs[0];
    let st = engine.train_rows(
        &run.params,
        qs.len(),
        &flat,
        &l.seg,
        &l.pos,
        l.first_scored_row(),
    );
    Ok(st.loss_sum / st.tokens as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match loss(&args) {
        Ok(l) => println!("loss={l:.8}"),
        Err(e) => {
            eprintln!("levels_loss: {e}");
            std::process::exit(2);
        }
    }
}
