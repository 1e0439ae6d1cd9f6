//! The weight files a run writes carry the names and shapes `docs/pytorch.md` tabulates, which
//! are what the `torch.nn` modules there expect (`load_state_dict(strict=True)`).

use safetensors::SafeTensors;
use seqcalc::model::{DecoderKind, InputKind, ModelConfig, ModelKind, Seq2Seq};
use seqcalc::nn::rnn::CellKind;
use std::collections::HashMap;

/// `(name pattern, shape expression)` rows of the table after `<!-- table:{which} -->`.
fn table(which: &str) -> Vec<(String, Vec<String>)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/pytorch.md"))
        .expect("docs/pytorch.md");
    let start = doc
        .find(&format!("<!-- table:{which} -->"))
        .unwrap_or_else(|| panic!("no table {which} in docs/pytorch.md"));
    let rest = &doc[start..];
    let body = &rest[..rest.find("<!-- end -->").expect("table end")];
    body.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_string();
            let shape = cells[2].trim_matches('`');
            let dims = shape
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|d| d.trim().to_string())
                .collect();
            (name, dims)
        })
        .collect()
}

/// Evaluates a shape term such as `G*E`, `E+H`, `V+1` or `6` with the given letters.
fn eval(term: &str, vars: &HashMap<&str, usize>) -> usize {
    term.split('+')
        .map(|prod| {
            prod.split('*')
                .map(|atom| {
                    let atom = atom.trim();
                    atom.parse().unwrap_or_else(|_| {
                        *vars.get(atom).unwrap_or_else(|| panic!("letter {atom}"))
                    })
                })
                .product::<usize>()
        })
        .sum()
}

/// Whether `name` fits `pattern`, where `{l}` and `{b}` stand for a number.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.find('{') {
        None => pattern == name,
        Some(i) => {
            let close = pattern[i..].find('}').expect("closing brace") + i;
            let (pre, post) = (&pattern[..i], &pattern[close + 1..]);
            name.starts_with(pre)
                && name.len() > pre.len() + post.len()
                && name.ends_with(post)
                && name[pre.len()..name.len() - post.len()]
                    .chars()
                    .all(|c| c.is_ascii_digit())
        }
    }
}

/// Checks every tensor of the weight file `m` writes against the table `which`.
fn check(which: &str, m: &Seq2Seq, vars: &HashMap<&str, usize>) -> usize {
    let rows = table(which);
    let dir = tempfile::tempdir().unwrap();
    seqcalc::rundir::save_weights(dir.path(), m, &m.init_params::<f32>(1)).unwrap();
    let bytes = std::fs::read(dir.path().join(seqcalc::rundir::WEIGHTS)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    for name in &names {
        // An exact row wins over a pattern (`decoder.weight_ih_l0` over `..._l{l}`).
        let row = rows
            .iter()
            .find(|(p, _)| p == name)
            .or_else(|| rows.iter().find(|(p, _)| matches(p, name)))
            .unwrap_or_else(|| panic!("{name} is not in docs/pytorch.md's {which} table"));
        let want: Vec<usize> = row.1.iter().map(|t| eval(t, vars)).collect();
        assert_eq!(
            st.tensor(name).unwrap().shape(),
            &want[..],
            "{name}: the file's shape against docs/pytorch.md's {:?}",
            row.1
        );
    }
    names.len()
}

#[test]
fn recurrent_weight_files_match_the_documented_pytorch_names() {
    let (v, t_in, t_out) = (12, 7, 4);
    let cases = [
        // The default model: 10 tensors, the two bias_hh written as zeros.
        (ModelConfig::default(), 10),
        (
            ModelConfig {
                cell: CellKind::Gru,
                layers: 2,
                hidden: 16,
                encoder_hidden: Some(24),
                ..Default::default()
            },
            14,
        ),
        (
            ModelConfig {
                cell: CellKind::SimpleRnn,
                input: InputKind::Embedding,
                embed_dim: 5,
                hidden: 8,
                ..Default::default()
            },
            11,
        ),
        (
            ModelConfig {
                decoder: DecoderKind::TeacherForced,
                attention: true,
                hidden: 8,
                layers: 2,
                ..Default::default()
            },
            17,
        ),
    ];
    for (cfg, count) in cases {
        let m = Seq2Seq::new(&cfg, v, t_in, t_out).unwrap();
        let e = cfg.encoder_hidden.unwrap_or(cfg.hidden);
        let vars = HashMap::from([
            ("V", v),
            ("D", cfg.embed_dim),
            (
                "I",
                if cfg.input == InputKind::Embedding {
                    cfg.embed_dim
                } else {
                    v
                },
            ),
            ("E", e),
            ("H", cfg.hidden),
            ("G", cfg.cell.gates()),
            (
                "J",
                if cfg.decoder == DecoderKind::TeacherForced {
                    v + 1
                } else {
                    e
                },
            ),
        ]);
        assert_eq!(check("recurrent", &m, &vars), count, "{cfg:?}");
    }
}

#[test]
fn transformer_weight_files_match_the_documented_pytorch_names() {
    let (v, t_in, t_out) = (13, 7, 5);
    let cfg = ModelConfig {
        kind: ModelKind::Transformer,
        decoder: DecoderKind::TeacherForced,
        hidden: 16,
        heads: 2,
        layers: 2,
        ffn: Some(24),
        ..Default::default()
    };
    let m = Seq2Seq::new(&cfg, v, t_in, t_out).unwrap();
    let vars = HashMap::from([
        ("V", v),
        ("D", 16),
        ("F", 24),
        ("NH", 2),
        ("T", t_in + t_out),
    ]);
    assert_eq!(check("transformer", &m, &vars), 4 + 2 * 8);
}
