//! `seqcalc predict`: answers questions with a trained model of any kind, from the arguments or
//! one per line of stdin.

use super::{color, mark};
use anyhow::{bail, Context, Result};
use clap::Args;
use seqcalc::model::Seq2SeqEngine;
use seqcalc::run::{Answer, Run};
use seqcalc::rundir;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct PredictArgs {
    /// Run directory of a trained model.
    #[arg(long)]
    pub model: PathBuf,
    /// Questions as a person writes them, e.g. "12+345". None, or `-`: one question per line of
    /// stdin (`seqcalc data --format questions | seqcalc predict --model DIR`).
    pub questions: Vec<String>,
    /// Write one JSON object per question (input, output, confidence, correct, error).
    #[arg(long)]
    pub jsonl: bool,
    /// Also show which question characters each answer character attended to (seq2seq models
    /// with attention).
    #[arg(long)]
    pub explain: bool,
    /// With --jsonl, add each answer's per-step probabilities (`probs`, `[output steps][V]`,
    /// symbols in the codec's alphabet order; seq2seq runs), e.g. to compare an exported model.
    #[arg(long, requires = "jsonl")]
    pub probs: bool,
    /// Worker threads (default 1).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// One line of `--jsonl` output, fields in this order.
#[derive(serde::Serialize)]
struct JsonlLine<'a> {
    input: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    answer: Option<&'a Answer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probs: Option<Vec<&'a [f32]>>,
}

pub fn exec(a: PredictArgs) -> Result<ExitCode> {
    if a.threads == 0 || a.threads > seqcalc::parallel::MAX_THREADS {
        bail!(
            "--threads {} must be in 1..={}",
            a.threads,
            seqcalc::parallel::MAX_THREADS
        );
    }
    let mut run = Run::load(&a.model, a.threads)?;
    if a.probs && !matches!(run, Run::Seq2seq { .. }) {
        bail!(
            "--probs gives the per-step probabilities of seq2seq models; {} is a {} run",
            a.model.display(),
            run.kind()
        );
    }
    if a.explain && !matches!(run, Run::Seq2seq { .. }) {
        bail!(
            "--explain shows the attention of seq2seq models trained with --attention; {} is a {} run",
            a.model.display(),
            run.kind()
        );
    }
    let from_stdin = a.questions.is_empty() || a.questions == ["-"];
    if !from_stdin && a.questions.iter().any(|q| q == "-") {
        bail!("`-` (read stdin) cannot be mixed with questions given as arguments");
    }
    let color = color();
    let rows = run.batch_rows();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    let mut answer_batch = |lines: &[(String, Option<&str>)],
                            out: &mut std::io::StdoutLock,
                            failed: &mut bool|
     -> Result<()> {
        let valid: Vec<&str> = lines
            .iter()
            .filter(|(_, bad)| bad.is_none())
            .map(|(q, _)| q.as_str())
            .collect();
        let mut answers = run.answer(&valid).into_iter();
        let step_probs = match (&mut run, a.probs) {
            (Run::Seq2seq { run, engine }, true) => step_probabilities(engine, run, &valid),
            _ => Vec::new(),
        };
        let mut step_probs = step_probs.iter();
        let v = match &run {
            Run::Seq2seq { run, .. } => run.codec.vocab_size(),
            _ => 1,
        };
        for (q, bad) in lines {
            let (r, probs) = match bad {
                None => (
                    answers.next().expect("one answer per valid line"),
                    step_probs.next(),
                ),
                Some(why) => (Err(why.to_string()), None),
            };
            *failed |= r.is_err();
            if a.jsonl {
                let line = JsonlLine {
                    input: q,
                    answer: r.as_ref().ok(),
                    error: r.as_ref().err().map(String::as_str),
                    probs: probs
                        .and_then(Option::as_ref)
                        .map(|p| p.chunks_exact(v).collect()),
                };
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
                continue;
            }
            match r {
                Ok(ans) => {
                    writeln!(out, "{}", human_line(q.trim(), &ans, color))?;
                    if let Some(work) = &ans.work {
                        writeln!(out, "    work: {work}")?;
                    }
                    if a.explain {
                        if let Run::Seq2seq { run, engine } = &mut run {
                            explain(engine, run, q.trim(), out)?;
                        }
                    }
                }
                Err(e) => eprintln!("error: {q:?}: {e}"),
            }
        }
        Ok(())
    };
    if from_stdin {
        let mut batch: Vec<(String, Option<&str>)> = Vec::new();
        let mut batch_bytes = 0usize;
        let mut stdin = std::io::stdin().lock();
        let mut line = Vec::new();
        while let Some(whole) = read_line(&mut stdin, &mut line).context("reading stdin")? {
            let bad = match (whole, std::str::from_utf8(&line).is_ok()) {
                (false, _) => Some("line longer than 1 MiB"),
                (true, false) => Some("line is not valid UTF-8"),
                (true, true) => None,
            };
            let shown = if whole { &line[..] } else { &line[..64] };
            let text = String::from_utf8_lossy(shown)
                .trim_end_matches('\r')
                .to_string();
            batch_bytes += text.len();
            batch.push((text, bad));
            // A batch is as many questions as inference handles at once, and at most a few
            // megabytes of text (lines can be long).
            if batch.len() >= rows || batch_bytes >= 8 << 20 {
                answer_batch(&batch, &mut out, &mut failed)?;
                batch.clear();
                batch_bytes = 0;
            }
        }
        answer_batch(&batch, &mut out, &mut failed)?;
    } else {
        let batch: Vec<(String, Option<&str>)> =
            a.questions.iter().map(|q| (q.clone(), None)).collect();
        answer_batch(&batch, &mut out, &mut failed)?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The longest question line `predict` reads from stdin.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// Reads one line (without its `\n`) into `buf`, holding at most [`MAX_LINE_BYTES`] of it:
/// `Some(true)` a whole line, `Some(false)` a longer one (the rest is read and dropped), `None`
/// at the end of the input.
fn read_line<R: BufRead>(input: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let n = std::io::Read::take(&mut *input, MAX_LINE_BYTES + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Some(true));
    }
    if (buf.len() as u64) <= MAX_LINE_BYTES {
        return Ok(Some(true)); // the last line, without a newline
    }
    // Too long: skip to the end of the line without holding it.
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                break;
            }
            None => {
                let n = chunk.len();
                input.consume(n);
            }
        }
    }
    Ok(Some(false))
}

/// `12+345 = 357   (confidence 0.998)  ✓`; an empty answer shows as `""`.
fn human_line(q: &str, ans: &Answer, color: bool) -> String {
    let shown = if ans.output.is_empty() {
        "\"\" (empty answer)".to_string()
    } else {
        ans.output.clone()
    };
    let detail = match (ans.confidence, ans.value) {
        (Some(c), _) => format!("   (confidence {c:.3})"),
        (None, Some(v)) => format!("   (regression output {v:.3})"),
        (None, None) => String::new(),
    };
    let check = ans
        .correct
        .map_or(String::new(), |c| format!("  {}", mark(c, color)));
    format!("{q} = {shown}{detail}{check}")
}

/// The attention of one answer of a seq2seq model with attention.
pub struct AttentionMap {
    /// Per input position, the question character it holds and its column (0-based) as typed;
    /// `None` for padding.
    pub columns: Vec<Option<(char, usize)>>,
    /// Per output step up to the end symbol: the symbol written and its weight on each input
    /// position.
    pub rows: Vec<(char, Vec<f32>)>,
}

/// Which question characters each answer step attended to.
pub fn attention_map(
    engine: &mut Seq2SeqEngine<f32>,
    run: &rundir::LoadedRun,
    question: &str,
) -> Result<AttentionMap> {
    let (t_in, t_out) = (run.codec.input_len(), run.codec.output_len());
    let mut enc = vec![0u8; t_in];
    run.codec.encode_input(question, &mut enc)?;
    let Some(w) = engine.attention_weights(&run.params, &enc, 1) else {
        bail!("--explain needs a model with attention (train with --attention)");
    };
    let chosen = engine.predict_indices(&run.params, &enc, 1);
    // Input position -> column of the question as typed (the model may read it reversed).
    let typed: Vec<char> = question.chars().collect();
    let column = |s: usize| -> Option<usize> {
        let pos = if run.codec.config().reverse_input {
            t_in - 1 - s
        } else {
            s
        };
        match run.codec.config().pad_side {
            seqcalc::codec::PadSide::Right => (pos < typed.len()).then_some(pos),
            seqcalc::codec::PadSide::Left => {
                let pad = t_in - typed.len();
                (pos >= pad).then(|| pos - pad)
            }
        }
    };
    let columns = (0..t_in)
        .map(|s| column(s).map(|c| (typed[c], c)))
        .collect();
    let mut rows = Vec::new();
    for s in 0..t_out {
        let sym = chosen[s];
        rows.push((run.codec.symbol(sym), w[s * t_in..(s + 1) * t_in].to_vec()));
        if Some(sym) == run.codec.eos_index() {
            break;
        }
    }
    Ok(AttentionMap { columns, rows })
}

/// `predict --explain`: for each answer step, the question characters it attended to most.
/// Each question's per-step probabilities `[T_out * V]` as the model computes them for its
/// answer (`None` for a question the codec refuses).
fn step_probabilities(
    engine: &mut Seq2SeqEngine<f32>,
    run: &rundir::LoadedRun,
    questions: &[&str],
) -> Vec<Option<Vec<f32>>> {
    let (t_in, t_out, v) = (
        run.codec.input_len(),
        run.codec.output_len(),
        run.codec.vocab_size(),
    );
    let mut enc = Vec::with_capacity(questions.len() * t_in);
    let mut rows = Vec::with_capacity(questions.len());
    let mut buf = vec![0u8; t_in];
    for (i, q) in questions.iter().enumerate() {
        if run.codec.encode_input(q.trim(), &mut buf).is_ok() {
            enc.extend_from_slice(&buf);
            rows.push(i);
        }
    }
    let mut out = vec![None; questions.len()];
    if !rows.is_empty() {
        let mut probs = Vec::new();
        engine.predict(&run.params, &enc, rows.len(), &mut probs);
        for (k, &i) in rows.iter().enumerate() {
            out[i] = Some(probs[k * t_out * v..(k + 1) * t_out * v].to_vec());
        }
    }
    out
}

pub fn explain(
    engine: &mut Seq2SeqEngine<f32>,
    run: &rundir::LoadedRun,
    question: &str,
    out: &mut impl Write,
) -> Result<()> {
    let map = attention_map(engine, run, question)?;
    writeln!(
        out,
        "  attention (output step: symbol <- question characters, column and weight){}",
        if run.codec.config().reverse_output {
            "; the model writes the answer backwards"
        } else {
            ""
        }
    )?;
    for (s, (sym, row)) in map.rows.iter().enumerate() {
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&x, &y| row[y].total_cmp(&row[x]));
        let top: Vec<String> = order
            .iter()
            .take(3)
            .filter(|&&i| row[i] >= 0.05)
            .map(|&i| match map.columns[i] {
                Some((ch, c)) => format!("{ch:?}@{} {:.2}", c + 1, row[i]),
                None => format!("pad {:.2}", row[i]),
            })
            .collect();
        writeln!(out, "  {:>2}: {:?} <- {}", s + 1, sym, top.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_or_refused_past_the_limit_without_holding_them() {
        let long = vec![b'7'; (MAX_LINE_BYTES as usize) * 3];
        let mut input = Vec::new();
        for part in [&b"1+1\n"[..], &long, b"\n2+2\r\n", b"3+3"] {
            input.extend_from_slice(part);
        }
        let mut reader = std::io::BufReader::new(&input[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(whole) = read_line(&mut reader, &mut buf).unwrap() {
            assert!(buf.len() as u64 <= MAX_LINE_BYTES + 1);
            got.push((
                whole,
                String::from_utf8_lossy(&buf[..buf.len().min(8)]).into_owned(),
            ));
        }
        assert_eq!(
            got,
            [
                (true, "1+1".to_string()),
                (false, "77777777".to_string()),
                (true, "2+2\r".to_string()),
                (true, "3+3".to_string())
            ]
        );
    }
}
