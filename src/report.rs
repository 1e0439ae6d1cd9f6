//! What people see: progress bars, sample tables with ✓/✗, curves as pictures.

use crate::fsutil::write_atomic;
use crate::history::History;
use plotters::prelude::*;
use std::io::IsTerminal;
use std::path::Path;

/// One validation question shown after an epoch.
#[derive(Clone, Debug)]
pub struct Sample {
    pub question: String,
    pub target: String,
    pub prediction: String,
    /// The model's worked answer, numbers written forwards (codecs with a scratchpad).
    pub work: Option<String>,
}

impl Sample {
    pub fn correct(&self) -> bool {
        self.target == self.prediction
    }
}

const ANSI_GREEN: &str = "\x1b[32m";
const ANSI_RED: &str = "\x1b[31m";
const ANSI_RESET: &str = "\x1b[0m";

/// Formats samples as the tutorial does (`Q 12+345  T 357  ✓ 357`), ✓ green / ✗ red when
/// `color`, then "Accuracy on sample: N%". Long strings (over `max_width` chars) are abbreviated
/// as runs (`-x17 p -x5 ...`).
pub fn format_samples(samples: &[Sample], color: bool, max_width: usize) -> String {
    let rows: Vec<(String, String, String, bool)> = samples
        .iter()
        .map(|s| {
            let mut prediction = abbreviate(&s.prediction, max_width);
            if let Some(work) = &s.work {
                prediction = format!("{prediction:<8} (work {})", abbreviate(work, max_width));
            }
            (
                abbreviate(&s.question, max_width),
                abbreviate(&s.target, max_width),
                prediction,
                s.correct(),
            )
        })
        .collect();
    let wq = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let wt = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (q, t, p, ok) in &rows {
        let mark = match (ok, color) {
            (true, true) => format!("{ANSI_GREEN}✓{ANSI_RESET}"),
            (false, true) => format!("{ANSI_RED}✗{ANSI_RESET}"),
            (true, false) => "✓".to_string(),
            (false, false) => "✗".to_string(),
        };
        out.push_str(&format!("  Q {q:<wq$}   T {t:<wt$}   {mark} {p}\n"));
    }
    let right = rows.iter().filter(|r| r.3).count();
    if !rows.is_empty() {
        out.push_str(&format!(
            "  Accuracy on sample: {:.0}% ({right}/{})\n",
            100.0 * right as f64 / rows.len() as f64,
            rows.len()
        ));
    }
    out
}

/// Abbreviates a long string by runs of equal characters: "-----p--" -> "-x5 p --"; runs of
/// three or more become `<char>x<count>` (a space shows as `␣`). Strings that fit are unchanged.
pub fn abbreviate(s: &str, max_width: usize) -> String {
    if s.chars().count() <= max_width {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut j = i;
        while j < chars.len() && chars[j] == c {
            j += 1;
        }
        let shown = if c == ' ' { '␣' } else { c };
        let n = j - i;
        tokens.push(if n >= 3 {
            format!("{shown}x{n}")
        } else {
            std::iter::repeat_n(shown, n).collect()
        });
        i = j;
    }
    let mut out = tokens.join(" ");
    if out.chars().count() > max_width {
        out = out
            .chars()
            .take(max_width.saturating_sub(4))
            .collect::<String>()
            + " ...";
    }
    out
}

/// A progress bar on stderr for one epoch of `total` examples (examples/s, ETA); hidden when
/// stderr is not a terminal.
pub fn epoch_bar(epoch: usize, epochs: usize, total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let style = indicatif::ProgressStyle::with_template(
        "Epoch {prefix} [{bar:30}] {pos}/{len} examples  {ex_per_sec}  ETA {eta}",
    )
    .expect("valid template")
    // indicatif's own {per_sec} prints four decimals ("41,234.5678/s"); whole examples suffice.
    .with_key(
        "ex_per_sec",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let rate = state.per_sec();
            let rate = if rate.is_finite() {
                rate.round() as u64
            } else {
                0
            };
            let _ = write!(w, "{} ex/s", indicatif::HumanCount(rate));
        },
    )
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// True when stdout is a terminal and NO_COLOR is unset.
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A check mark or cross, green or red where colour is on.
pub fn mark(correct: bool, color: bool) -> &'static str {
    match (correct, color) {
        (true, true) => "\x1b[32m✓\x1b[0m",
        (true, false) => "✓",
        (false, true) => "\x1b[31m✗\x1b[0m",
        (false, false) => "✗",
    }
}

/// A picture that could not be drawn or written, with the reason (one line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlotError(pub String);

impl From<std::io::Error> for PlotError {
    fn from(e: std::io::Error) -> Self {
        PlotError(e.to_string())
    }
}

/// The font charts use, shipped with the binary (DejaVu Sans Mono; licence in assets/).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One line of a chart: label, colour, (epoch, value) points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// One chart: its name (also the y label) and lines; "loss" charts scale to their data, the
/// others to [0, 1].
type Panel = (&'static str, Vec<Series>);

fn points(h: &History, f: fn(&crate::history::EpochRecord) -> f64) -> Vec<(f64, f64)> {
    h.records.iter().map(|x| (x.epoch as f64, f(x))).collect()
}

/// Charts spanning at most this many epochs also get a dot per epoch.
const MARKED_EPOCHS: usize = 20;

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    panels: &[Panel],
    title: &str,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Debug| PlotError(format!("{e:?}"));
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    let max_epoch = panels
        .iter()
        .flat_map(|p| p.1.iter().flat_map(|s| s.2.iter().map(|pt| pt.0)))
        .fold(2.0f64, f64::max);
    for (area, (name, series)) in areas.into_iter().zip(panels) {
        let is_loss = *name == "loss";
        let top = series
            .iter()
            .flat_map(|s| s.2.iter().map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        // Without data (no epochs yet) a loss chart still gets a sensible 0..1 axis.
        let ymax = if is_loss && top > 0.0 {
            top * 1.05
        } else {
            1.0
        };
        let mut chart = ChartBuilder::on(&area)
            .caption(*name, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(1.0..max_epoch, 0.0..ymax)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            // Epochs are whole: at most one label per epoch, and none between epochs (a short
            // run would otherwise read "1 2 2 3 3").
            .x_labels((max_epoch as usize).min(10))
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-6 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .x_desc("epoch")
            .y_desc(*name)
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| err(&e))?;
        for (label, color, data) in series {
            let color = *color;
            let finite: Vec<(f64, f64)> =
                data.iter().copied().filter(|p| p.1.is_finite()).collect();
            // Dots on short charts (the same for every line of a chart), and always on a lone
            // point: a line through a single epoch draws nothing at all.
            if max_epoch <= MARKED_EPOCHS as f64 || finite.len() == 1 {
                chart
                    .draw_series(finite.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| err(&e))?;
            }
            chart
                .draw_series(LineSeries::new(finite, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(if is_loss {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            })
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Encodes 8-bit RGB pixels, row by row, as a PNG file's bytes.
fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Best);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Renders panels side by side into `svg` and `png`, atomically.
fn render(panels: &[Panel], title: &str, svg: &Path, png: &Path) -> Result<(), PlotError> {
    register_font();
    let size = (550 * panels.len().max(1) as u32, 420u32);
    let mut text = String::new();
    draw(
        SVGBackend::with_string(&mut text, size).into_drawing_area(),
        panels,
        title,
    )?;
    write_atomic(svg, text.as_bytes())?;
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    draw(
        BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(),
        panels,
        title,
    )?;
    let bytes = encode_png(&rgb, size)
        .map_err(|e| PlotError(format!("encoding {}: {e}", png.display())))?;
    write_atomic(png, &bytes)?;
    Ok(())
}

/// Draws the tutorial's two plots side by side (loss: train vs validation; accuracy: train and
/// validation per-character, validation exact match) into `svg` and `png`, atomically.
pub fn plot_curves(
    history: &History,
    title: &str,
    svg: &Path,
    png: &Path,
) -> Result<(), PlotError> {
    plot_curves_labelled(history, title, CURVE_LABELS, svg, png)
}

/// The accuracy lines of a seq2seq run's curves.
pub const CURVE_LABELS: [&str; 3] = [
    "train (per char)",
    "validation (per char)",
    "validation exact match",
];

/// `plot_curves` with other names for the three accuracy lines (the mapping regressions have no
/// characters: their accuracies are rounded-answer exact match).
pub fn plot_curves_labelled(
    history: &History,
    title: &str,
    acc_labels: [&str; 3],
    svg: &Path,
    png: &Path,
) -> Result<(), PlotError> {
    let panels: [Panel; 2] = [
        (
            "loss",
            vec![
                ("train".into(), BLUE, points(history, |x| x.train_loss)),
                ("validation".into(), RED, points(history, |x| x.val_loss)),
            ],
        ),
        (
            "accuracy",
            vec![
                (
                    acc_labels[0].into(),
                    BLUE,
                    points(history, |x| x.train_char_acc),
                ),
                (
                    acc_labels[1].into(),
                    RED,
                    points(history, |x| x.val_char_acc),
                ),
                (
                    acc_labels[2].into(),
                    RGBColor(0, 150, 0),
                    points(history, |x| x.val_exact),
                ),
            ],
        ),
    ];
    render(&panels, title, svg, png)
}

/// Overlays several runs: validation loss, and validation exact match, one line per run.
pub fn plot_compare(runs: &[(String, History)], svg: &Path, png: &Path) -> Result<(), PlotError> {
    let palette = [
        BLUE,
        RED,
        RGBColor(0, 150, 0),
        MAGENTA,
        RGBColor(230, 140, 0),
        CYAN,
        BLACK,
        RGBColor(120, 80, 40),
    ];
    let line = |f: fn(&crate::history::EpochRecord) -> f64| -> Vec<Series> {
        runs.iter()
            .enumerate()
            .map(|(i, (name, h))| (name.clone(), palette[i % palette.len()], points(h, f)))
            .collect()
    };
    let panels: [Panel; 2] = [
        ("loss", line(|x| x.val_loss)),
        ("validation exact match", line(|x| x.val_exact)),
    ];
    render(&panels, "validation curves", svg, png)
}

/// A table of values in [0, 1] as coloured cells (red 0, yellow 0.5, green 1; grey: none).
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub rows: &'a [String],
    pub cols: &'a [String],
    /// `[row][col]`.
    pub values: &'a [Vec<Option<f64>>],
    /// Text written in each cell.
    pub texts: &'a [Vec<String>],
}

fn heat_color(v: Option<f64>) -> RGBColor {
    let Some(v) = v else {
        return RGBColor(220, 220, 220);
    };
    let v = v.clamp(0.0, 1.0);
    let (r, g) = if v < 0.5 {
        (230.0, 80.0 + 340.0 * v)
    } else {
        (230.0 - 400.0 * (v - 0.5), 250.0 - 60.0 * (v - 0.5))
    };
    RGBColor(r as u8, g as u8, 90)
}

fn draw_heatmap<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    h: &Heatmap,
    label_w: u32,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Debug| PlotError(format!("{e:?}"));
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (cell_w, cell_h, top) = (HEAT_CELL_W as i32, HEAT_CELL_H as i32, 70);
    root.draw(&Text::new(
        h.title.to_string(),
        (12, 12),
        ("sans-serif", 20).into_font(),
    ))
    .map_err(|e| err(&e))?;
    let x0 = label_w as i32 + 10;
    let centred = |size| {
        ("sans-serif", size)
            .into_font()
            .color(&BLACK)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ))
    };
    for (ci, c) in h.cols.iter().enumerate() {
        let x = x0 + ci as i32 * cell_w + cell_w / 2;
        root.draw(&Text::new(c.clone(), (x, top - 14), centred(14)))
            .map_err(|e| err(&e))?;
    }
    for (ri, r) in h.rows.iter().enumerate() {
        let y = top + ri as i32 * cell_h;
        root.draw(&Text::new(
            r.clone(),
            (10, y + cell_h / 2 - 7),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(|e| err(&e))?;
        for ci in 0..h.cols.len() {
            let x = x0 + ci as i32 * cell_w;
            let v = h
                .values
                .get(ri)
                .and_then(|row| row.get(ci))
                .copied()
                .flatten();
            root.draw(&Rectangle::new(
                [(x, y), (x + cell_w - 2, y + cell_h - 2)],
                heat_color(v).filled(),
            ))
            .map_err(|e| err(&e))?;
            let text = h
                .texts
                .get(ri)
                .and_then(|row| row.get(ci))
                .cloned()
                .unwrap_or_default();
            root.draw(&Text::new(
                text,
                (x + cell_w / 2, y + cell_h / 2),
                centred(14),
            ))
            .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

const HEAT_CELL_W: u32 = 130;
const HEAT_CELL_H: u32 = 40;

/// Draws a heatmap into `svg` and `png`, atomically.
pub fn plot_heatmap(h: &Heatmap, svg: &Path, png: &Path) -> Result<(), PlotError> {
    register_font();
    let label_w = 8 * h.rows.iter().map(|r| r.chars().count()).max().unwrap_or(4) as u32 + 10;
    let size = (
        (label_w + 20 + HEAT_CELL_W * h.cols.len().max(1) as u32)
            .max(12 * h.title.chars().count() as u32 + 40),
        70 + HEAT_CELL_H * h.rows.len().max(1) as u32 + 20,
    );
    let mut text = String::new();
    draw_heatmap(
        SVGBackend::with_string(&mut text, size).into_drawing_area(),
        h,
        label_w,
    )?;
    write_atomic(svg, text.as_bytes())?;
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    draw_heatmap(
        BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(),
        h,
        label_w,
    )?;
    let bytes = encode_png(&rgb, size)
        .map_err(|e| PlotError(format!("encoding {}: {e}", png.display())))?;
    write_atomic(png, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::EpochRecord;

    #[test]
    fn heatmaps_are_written_with_every_cell() {
        let dir = tempfile::tempdir().unwrap();
        let (svg, png) = (dir.path().join("h.svg"), dir.path().join("h.png"));
        let rows = vec!["hidden=32".to_string(), "hidden=64".to_string()];
        let cols = vec!["digits=3".to_string(), "digits=5".to_string()];
        let values = vec![vec![Some(0.25), None], vec![Some(1.0), Some(0.5)]];
        let texts = vec![
            vec!["0.250".to_string(), "-".to_string()],
            vec!["1.000".to_string(), "0.500±0.010".to_string()],
        ];
        let h = Heatmap {
            title: "exact match",
            rows: &rows,
            cols: &cols,
            values: &values,
            texts: &texts,
        };
        plot_heatmap(&h, &svg, &png).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        for t in ["hidden=64", "digits=5", "0.500±0.010", "exact match"] {
            assert!(text.contains(t), "{t} missing");
        }
        assert!(std::fs::read(&png)
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_ne!(heat_color(Some(0.0)), heat_color(Some(1.0)));
    }

    #[test]
    fn abbreviates_runs() {
        let s = format!("{}p{}", "-".repeat(17), "-".repeat(5));
        assert_eq!(abbreviate(&s, 10), "-x17 p -x5");
        assert_eq!(abbreviate("12+345", 10), "12+345");
        assert_eq!(abbreviate(&format!("q{}", " ".repeat(9)), 5), "q ␣x9");
        assert!(abbreviate(&"-p".repeat(100), 20).ends_with(" ..."));
    }

    #[test]
    fn samples_show_marks_and_accuracy() {
        let s = vec![
            Sample {
                question: "12+345".into(),
                target: "357".into(),
                prediction: "357".into(),
                work: None,
            },
            Sample {
                question: "7+8".into(),
                target: "15".into(),
                prediction: "14".into(),
                work: Some("56,7,14".into()),
            },
        ];
        let plain = format_samples(&s, false, 60);
        assert!(
            plain.contains("✓ 357")
                && plain.contains("✗ 14       (work 56,7,14)")
                && plain.contains("Accuracy on sample: 50% (1/2)"),
            "{plain}"
        );
        assert!(!plain.contains('\x1b'));
        assert!(format_samples(&s, true, 60).contains("\x1b[32m✓"));
    }

    #[test]
    fn epoch_bar_counts_examples() {
        let bar = epoch_bar(3, 50, 45_000);
        assert_eq!(bar.length(), Some(45_000));
        assert_eq!(bar.prefix(), "3/50");
        bar.inc(23_040);
        assert_eq!(bar.position(), 23_040);
        bar.finish_and_clear();
    }

    #[test]
    fn png_encoding_writes_signature_and_size() {
        let bytes = encode_png(&[255u8; 4 * 3 * 3], (4, 3)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        // IHDR: width and height big-endian right after the chunk length and type.
        assert_eq!(&bytes[16..24], &[0, 0, 0, 4, 0, 0, 0, 3]);
    }

    #[test]
    fn curves_are_written_as_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0usize, 1, 5] {
            let h = History {
                records: (1..=n)
                    .map(|e| EpochRecord {
                        epoch: e,
                        train_loss: 2.0 / e as f64,
                        train_char_acc: 0.2 * e as f64 / 1.2,
                        val_loss: 2.1 / e as f64,
                        val_char_acc: 0.15 * e as f64,
                        val_exact: 0.1 * e as f64,
                        train_secs: 1.0,
                        epoch_secs: 1.1,
                        elapsed_secs: e as f64,
                        lr: None,
                    })
                    .collect(),
            };
            let (svg, png) = (
                dir.path().join(format!("c{n}.svg")),
                dir.path().join(format!("c{n}.png")),
            );
            plot_curves(&h, "test run", &svg, &png).unwrap();
            assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
            assert!(std::fs::read(&png)
                .unwrap()
                .starts_with(b"\x89PNG\r\n\x1a\n"));
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with('.')),
            "temporary files left: {names:?}"
        );
    }
}
