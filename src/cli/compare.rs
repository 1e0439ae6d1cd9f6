//! `seqcalc compare`: the curves of several runs, of any kinds, in one picture, and their
//! final metrics.

use anyhow::Result;
use clap::Args;
use seqcalc::report;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct CompareArgs {
    /// Run directories.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Picture path without extension: writes OUT.svg and OUT.png.
    #[arg(long, default_value = "compare")]
    pub out: PathBuf,
}

pub fn exec(a: CompareArgs) -> Result<ExitCode> {
    let mut runs = Vec::new();
    let mut kinds = Vec::new();
    for dir in &a.runs {
        let kind = seqcalc::run::load_config(dir)?.kind();
        let h = seqcalc::run::load_history(dir)?;
        let name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        runs.push((name, h));
        kinds.push(kind);
    }
    println!("metrics at each run's record of lowest validation loss (coupled-transformer runs: by step, training loss, mean exact match over the evaluated lengths)");
    println!(
        "{:<28}{:<21}{:>8}{:>10}{:>12}{:>12}{:>10}{:>11}",
        "run", "kind", "epochs", "min-loss", "val exact", "val char", "val loss", "wall s"
    );
    for ((name, h), kind) in runs.iter().zip(&kinds) {
        let best = h
            .records
            .iter()
            .min_by(|x, y| x.val_loss.total_cmp(&y.val_loss));
        match (best, h.records.last()) {
            (Some(b), Some(l)) => println!(
                "{name:<28}{:<21}{:>8}{:>10}{:>12.4}{:>12.4}{:>10.4}{:>11.1}",
                kind.name(),
                l.epoch,
                b.epoch,
                b.val_exact,
                b.val_char_acc,
                b.val_loss,
                l.elapsed_secs
            ),
            _ => println!("{name:<28}{:<21}  (no records yet)", kind.name()),
        }
    }
    let (svg, png) = (a.out.with_extension("svg"), a.out.with_extension("png"));
    report::plot_compare(&runs, &svg, &png)?;
    println!("Curves: {} and {}", svg.display(), png.display());
    Ok(ExitCode::SUCCESS)
}
