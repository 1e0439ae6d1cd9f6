//! Tests of the codec.

use super::*;
use crate::task::{TaskConfig, TaskKind};
use proptest::prelude::*;

fn codec(cfg: CodecConfig) -> Codec {
    Codec::new(&cfg, &TaskConfig::default()).unwrap()
}

fn indices(c: &Codec, s: &str) -> Vec<u8> {
    s.chars().map(|ch| c.symbol_index(ch).unwrap()).collect()
}

#[test]
fn keras_layout() {
    let c = codec(CodecConfig::default());
    assert_eq!((c.vocab_size(), c.input_len(), c.output_len()), (12, 7, 4));
    assert_eq!(c.alphabet(), " +0123456789");
    let mut x = [0u8; 7];
    c.encode_input("12+345", &mut x).unwrap();
    // Padded "12+345 ", then reversed: " 543+21" (' ' = 0, '+' = 1, digit d = d + 2).
    assert_eq!(x, [0, 7, 6, 5, 1, 4, 3]);
    assert_eq!(x.to_vec(), indices(&c, " 543+21"));
    assert_eq!(c.decode_input(&x), "12+345");
    let mut y = [0u8; 4];
    c.encode_output("357", &mut y).unwrap();
    assert_eq!(y, [5, 7, 9, 0]);
    assert_eq!(c.decode_output(&y), "357");
}

#[test]
fn end_symbol_ends_answers() {
    let c = codec(CodecConfig {
        eos: Some('$'),
        ..CodecConfig::default()
    });
    assert_eq!(c.alphabet(), " $+0123456789");
    assert_eq!(c.output_len(), 5);
    let mut y = [0u8; 5];
    c.encode_output("35", &mut y).unwrap();
    assert_eq!(y.to_vec(), indices(&c, "35$  "));
    assert_eq!(c.decode_output(&y), "35");
    // Whatever follows the end symbol is not part of the answer.
    assert_eq!(c.decode_output(&indices(&c, "7$12 ")), "7");
    assert!(c.encode_output("1000", &mut y).is_ok());
    assert!(c.encode_output("10000", &mut y).is_err());
    let left = codec(CodecConfig {
        eos: Some('$'),
        pad_side: PadSide::Left,
        ..CodecConfig::default()
    });
    left.encode_output("35", &mut y).unwrap();
    assert_eq!(y.to_vec(), indices(&c, "35$  "));
    for bad in ['+', ' '] {
        assert!(Codec::new(
            &CodecConfig {
                eos: Some(bad),
                ..CodecConfig::default()
            },
            &TaskConfig::default()
        )
        .is_err());
    }
}

#[test]
fn reversed_answers_round_trip() {
    for eos in [None, Some('$')] {
        let c = codec(CodecConfig {
            eos,
            reverse_output: true,
            ..CodecConfig::default()
        });
        let mut y = vec![0u8; c.output_len()];
        c.encode_output("357", &mut y).unwrap();
        assert_eq!(c.symbol(y[0]), '7');
        assert_eq!(c.decode_output(&y), "357");
    }
}

#[test]
fn numbers_of_worked_answers_turn_around() {
    assert_eq!(reverse_numbers("48,36,408;2448"), "84,63,804;8442");
    assert_eq!(reverse_numbers("455;-408"), "554;804-");
    assert_eq!(reverse_numbers(&reverse_numbers("12;-3,45")), "12;-3,45");
    assert_eq!(reverse_numbers(""), "");
    assert_eq!(last_number("554;804-"), "804-");
    assert_eq!(last_number("7"), "7");
}

#[test]
fn scratchpads_write_the_work_and_decode_the_answer() {
    let task = TaskConfig {
        kind: TaskKind::Expression,
        terms_min: 3,
        terms_max: 3,
        ops: "+-*".into(),
        brackets: 1,
        digits: 2,
        ..TaskConfig::default()
    };
    let target = |q: &str| {
        crate::task::solve(&task, q)
            .unwrap()
            .target(true)
            .unwrap()
            .into_owned()
    };
    for reverse_output in [false, true] {
        let cfg = CodecConfig {
            eos: Some('$'),
            reverse_output,
            scratchpad: true,
            ..CodecConfig::default()
        };
        let c = Codec::new(&cfg, &task).unwrap();
        assert_eq!(c.alphabet(), " $()*+,-0123456789;");
        // The longest worked answer, (99*99)*99, and its end symbol.
        assert_eq!(c.output_len(), 32);
        let mut y = vec![0u8; c.output_len()];
        c.encode_target(&target("(12*34)*56"), &mut y).unwrap();
        let written = if reverse_output {
            "84,63,804;8442,0402,84822"
        } else {
            "48,36,408;2448,2040,22848"
        };
        assert_eq!(c.decode_written(&y), written);
        assert_eq!(c.decode_output(&y), "22848");
        assert_eq!(
            c.decode_work(&y).as_deref(),
            Some("48,36,408;2448,2040,22848")
        );
        c.encode_target(&target("47-(91*5)"), &mut y).unwrap();
        assert_eq!(c.decode_output(&y), "-408");
        assert_eq!(c.decode_work(&y).as_deref(), Some("455;-408"));
        // Without a scratchpad the target is the answer and there is no work.
        let plain = Codec::new(
            &CodecConfig {
                scratchpad: false,
                ..cfg
            },
            &task,
        )
        .unwrap();
        let mut y = vec![0u8; plain.output_len()];
        plain.encode_target("22848", &mut y).unwrap();
        assert_eq!(plain.decode_written(&y).len(), 5);
        assert_eq!(plain.decode_work(&y), None);
    }
    let err = |cfg: CodecConfig, task: &TaskConfig| Codec::new(&cfg, task).unwrap_err().to_string();
    let no_eos = CodecConfig {
        scratchpad: true,
        ..CodecConfig::default()
    };
    assert!(err(no_eos, &task).contains("needs an end symbol"));
    let addition = CodecConfig {
        scratchpad: true,
        eos: Some('$'),
        ..CodecConfig::default()
    };
    assert!(err(addition, &TaskConfig::default()).contains("needs the expression task"));
}

#[test]
fn padding_sides_and_reversal() {
    let mut x = [0u8; 7];
    for (pad_side, reverse_input, layout) in [
        (PadSide::Right, false, "12+3   "),
        (PadSide::Right, true, "   3+21"),
        (PadSide::Left, false, "   12+3"),
        (PadSide::Left, true, "3+21   "),
    ] {
        let c = codec(CodecConfig {
            pad_side,
            reverse_input,
            ..CodecConfig::default()
        });
        c.encode_input("12+3", &mut x).unwrap();
        assert_eq!(
            x.to_vec(),
            indices(&c, layout),
            "{pad_side:?} {reverse_input}"
        );
        assert_eq!(c.decode_input(&x), "12+3");
    }
    let c = codec(CodecConfig {
        pad_side: PadSide::Left,
        ..CodecConfig::default()
    });
    let mut y = [0u8; 4];
    c.encode_output("13", &mut y).unwrap();
    assert_eq!(y.to_vec(), indices(&c, "  13"));
    assert_eq!(c.decode_output(&y), "13");
    // Exactly full: no padding at all.
    c.encode_input("123+456", &mut x).unwrap();
    assert_eq!(c.decode_input(&x), "123+456");
}

#[test]
fn errors_name_the_problem() {
    let c = codec(CodecConfig::default());
    let mut x = [0u8; 7];
    let err = c.encode_input("1x2", &mut x).unwrap_err();
    assert_eq!(
        err,
        CodecError::UnknownSymbol {
            symbol: 'x',
            column: 2,
            alphabet: " +0123456789".into()
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("'x'") && msg.contains("column 2") && msg.contains("` +0123456789`"),
        "{msg}"
    );
    assert_eq!(
        c.encode_input("1+2é", &mut x).unwrap_err(),
        CodecError::UnknownSymbol {
            symbol: 'é',
            column: 4,
            alphabet: " +0123456789".into()
        }
    );
    let err = c.encode_input("1234+567", &mut x).unwrap_err();
    assert_eq!(
        err,
        CodecError::TooLong {
            what: "question",
            len: 8,
            max: 7
        }
    );
    assert_eq!(
        err.to_string(),
        "question is 8 characters long; this model takes at most 7"
    );
    let mut y = [0u8; 4];
    assert_eq!(
        c.encode_output("12345", &mut y).unwrap_err(),
        CodecError::TooLong {
            what: "answer",
            len: 5,
            max: 4
        }
    );
    assert_eq!(c.encode_input("", &mut x).unwrap_err(), CodecError::Empty);
    assert_eq!(
        c.encode_input("  \t", &mut x).unwrap_err(),
        CodecError::Empty
    );
}

#[test]
fn invalid_configs() {
    let task = TaskConfig::default();
    let invalid = |cfg: CodecConfig, needle: &str| match Codec::new(&cfg, &task) {
        Err(CodecError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("{cfg:?}: expected Invalid, got {other:?}"),
    };
    let with_alphabet = |a: &str| CodecConfig {
        alphabet: Some(a.into()),
        ..CodecConfig::default()
    };
    invalid(with_alphabet("0123456789+ "), "` +0123456789`");
    invalid(with_alphabet(" +00123456789"), "once");
    invalid(with_alphabet(""), "empty");
    invalid(
        with_alphabet(
            &(0u32..256)
                .map(|i| char::from_u32(0x100 + i).unwrap())
                .collect::<String>(),
        ),
        "256 symbols",
    );
    invalid(
        CodecConfig {
            pad: '_',
            ..CodecConfig::default()
        },
        "'_'",
    );
    invalid(
        CodecConfig {
            input_len: Some(0),
            ..CodecConfig::default()
        },
        "at least 1",
    );
    invalid(
        CodecConfig {
            output_len: Some(0),
            ..CodecConfig::default()
        },
        "at least 1",
    );
    let max: String = (0u32..255)
        .map(|i| char::from_u32(0x100 + i).unwrap())
        .collect();
    let pad = max.chars().next().unwrap();
    assert_eq!(
        Codec::new(
            &CodecConfig {
                alphabet: Some(max),
                pad,
                ..CodecConfig::default()
            },
            &task
        )
        .unwrap()
        .vocab_size(),
        255
    );
}

#[test]
fn resolve_fills_only_missing_fields() {
    let sub = TaskConfig {
        digits: 5,
        op: "-".into(),
        ..TaskConfig::default()
    };
    let r = CodecConfig::default().resolve(&sub);
    assert_eq!(
        r,
        CodecConfig {
            alphabet: Some(" +-0123456789".into()),
            input_len: Some(11),
            output_len: Some(6),
            ..CodecConfig::default()
        }
    );
    let c = Codec::new(
        &CodecConfig {
            reverse_input: false,
            ..CodecConfig::default()
        },
        &sub,
    )
    .unwrap();
    assert_eq!(c.vocab_size(), 13);
    assert_eq!(
        c.config(),
        &CodecConfig {
            reverse_input: false,
            ..r.clone()
        }
    );
    let mine = CodecConfig {
        input_len: Some(20),
        ..CodecConfig::default()
    };
    assert_eq!(mine.resolve(&sub).input_len, Some(20));
    assert_eq!(r.resolve(&TaskConfig::default()), r);
    let pq = TaskConfig {
        kind: TaskKind::PqSystem,
        ..TaskConfig::default()
    };
    let c = Codec::new(&CodecConfig::default(), &pq).unwrap();
    assert_eq!(
        (c.alphabet(), c.input_len(), c.output_len()),
        (" -pq", 2001, 2001)
    );
}

#[test]
fn decode_probs_takes_argmax_and_multiplies() {
    let c = codec(CodecConfig::default());
    let v = c.vocab_size();
    let mut probs = vec![0.0f32; 4 * v];
    // "13" then padding: steps choose '1', '3', ' ', ' '.
    for (step, (sym, p)) in [('1', 0.9f32), ('3', 0.5), (' ', 0.8), (' ', 1.0)]
        .into_iter()
        .enumerate()
    {
        let i = usize::from(c.symbol_index(sym).unwrap());
        probs[step * v..(step + 1) * v].fill((1.0 - p) / (v - 1) as f32);
        probs[step * v + i] = p;
    }
    let (answer, confidence) = c.decode_probs(&probs);
    assert_eq!(answer, "13");
    let want = 0.9f64 * 0.5 * 0.8 * 1.0;
    assert!((confidence - want).abs() < 1e-6, "{confidence}");
    assert_eq!(
        c.written_steps(&probs),
        [('1', 0.9), ('3', 0.5), (' ', 0.8), (' ', 1.0)]
    );
}

#[test]
fn non_ascii_symbols() {
    let c = Codec::new(
        &CodecConfig {
            alphabet: Some(" 0123456789×".into()),
            ..CodecConfig::default()
        },
        &TaskConfig::default(),
    )
    .unwrap();
    let mut x = [0u8; 7];
    c.encode_input("12×3", &mut x).unwrap();
    assert_eq!(c.decode_input(&x), "12×3");
    assert_eq!(c.symbol_index('×'), Some(11));
    assert_eq!(c.symbol(11), '×');
    assert_eq!(c.symbol(200), char::REPLACEMENT_CHARACTER);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trips(
        a in 0u32..100_000,
        b in 0u32..100_000,
        plus in any::<bool>(),
        left in any::<bool>(),
        reverse_input in any::<bool>(),
        extra in 0usize..4,
    ) {
        let op = if plus { "+" } else { "-" };
        let task = TaskConfig { digits: 5, op: op.into(), ..TaskConfig::default() };
        let cfg = CodecConfig {
            input_len: Some(task.max_question_len() + extra),
            pad_side: if left { PadSide::Left } else { PadSide::Right },
            reverse_input,
            ..CodecConfig::default()
        };
        let c = Codec::new(&cfg, &task).unwrap();
        let question = format!("{a}{op}{b}");
        let answer = if plus { (a as i64 + b as i64).to_string() } else { (a as i64 - b as i64).to_string() };
        let mut x = vec![0u8; c.input_len()];
        let mut y = vec![0u8; c.output_len()];
        c.encode_input(&question, &mut x).unwrap();
        c.encode_output(&answer, &mut y).unwrap();
        prop_assert!(x.iter().chain(&y).all(|&i| usize::from(i) < c.vocab_size()));
        prop_assert_eq!(c.decode_input(&x), question);
        prop_assert_eq!(c.decode_output(&y), answer);
    }
}
