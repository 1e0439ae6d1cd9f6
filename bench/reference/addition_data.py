"""The data of seqcalc's default experiment (the Keras `addition_rnn` example), for the
reference trainers beside this file.

Each operand: a length drawn uniformly from 1..digits, then that many uniform digits read as a
number (so leading zeros make it shorter, as in the Keras example). A pair already drawn is
skipped; for `+` the key is the sorted pair (`b+a` is a duplicate of `a+b`), for `-` the ordered
pair. Questions are right-padded with spaces to 2*digits+1 characters (reversed for `+`), answers
to digits+1. One-hot encoding, one shuffle, the last 10% held out for validation. All
randomness comes from `numpy.random.RandomState(seed)`, drawn in the Keras example's order.
"""
import numpy as np


def make_dataset(digits=3, op="+", size=50000, seed=1337, reverse=None):
    if op not in ("+", "-"):
        raise ValueError("op must be + or -")
    if reverse is None:
        reverse = op == "+"
    chars = "0123456789+ " if op == "+" else "0123456789+- "
    question_len, answer_len = 2 * digits + 1, digits + 1
    rng = np.random.RandomState(seed)
    digit_symbols = list("0123456789")

    def operand():
        length = rng.randint(1, digits + 1)
        return int("".join(rng.choice(digit_symbols) for _ in range(length)))

    questions, answers, seen = [], [], set()
    while len(questions) < size:
        a, b = operand(), operand()
        key = tuple(sorted((a, b))) if op == "+" else (a, b)
        if key in seen:
            continue
        seen.add(key)
        question = f"{a}{op}{b}".ljust(question_len)
        answers.append(str(a + b if op == "+" else a - b).ljust(answer_len))
        questions.append(question[::-1] if reverse else question)

    index = {c: i for i, c in enumerate(chars)}
    x = np.zeros((size, question_len, len(chars)), dtype=bool)
    y = np.zeros((size, answer_len, len(chars)), dtype=bool)
    for i, (q, a) in enumerate(zip(questions, answers)):
        x[i, np.arange(question_len), [index[c] for c in q]] = True
        y[i, np.arange(answer_len), [index[c] for c in a]] = True

    order = np.arange(size)
    rng.shuffle(order)
    x, y = x[order], y[order]
    questions = [questions[i] for i in order]
    answers = [answers[i] for i in order]
    split = size - size // 10
    return dict(
        chars=chars, question_len=question_len, answer_len=answer_len, reverse=reverse,
        x_train=x[:split], y_train=y[:split], x_val=x[split:], y_val=y[split:],
        questions_val=questions[split:], answers_val=answers[split:],
    )


def exact_match(predicted, y_onehot):
    """Fraction of answers with every character right (predicted: indices or probabilities)."""
    if predicted.ndim == 3:
        predicted = predicted.argmax(-1)
    return float((predicted == y_onehot.argmax(-1)).all(axis=1).mean())


CSV_COLUMNS = ["epoch", "fit_s", "train_loss", "train_char_acc", "val_loss", "val_char_acc",
               "val_exact", "eval_s", "cum_fit_s", "elapsed_s"]


def add_common_flags(parser):
    parser.add_argument("--digits", type=int, default=3, help="longest operand (default 3)")
    parser.add_argument("--op", choices=["+", "-"], default="+")
    parser.add_argument("--epochs", type=int, default=40, help="at most this many epochs (default 40)")
    parser.add_argument("--training-size", type=int, default=50000, help="questions before the split (default 50,000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--stop-at", type=float, default=0.99,
                        help="stop once validation exact match >= this for --patience epochs in a row (0: never)")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--csv", default="run.csv", help="per-epoch results (columns: " + ", ".join(CSV_COLUMNS) + ")")
    parser.add_argument("--infer-seconds", type=float, default=0.0,
                        help="after training, measure batched inference (batches of 1,024) for this long "
                             "and print `answers_per_sec=N` (default 0: skip)")
