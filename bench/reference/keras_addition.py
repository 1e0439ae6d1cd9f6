#!/usr/bin/env python3
"""seqcalc's default experiment in Keras 3 (TensorFlow CPU), for bench/compare.

The Keras `addition_rnn` example: LSTM(128) -> RepeatVector(answer length) ->
LSTM(128, return_sequences) -> TimeDistributed(Dense(chars, softmax)); categorical
cross-entropy, Adam with Keras's defaults (lr 1e-3), batch 128, validation on the held-out 10%.
After every epoch it measures exact match (every answer character right) on the whole
validation set. One line per epoch on stdout and in --csv: fit_s is the epoch's training plus
Keras's validation pass; the exact-match pass is timed apart as eval_s.

--single-fit trains in one fit(epochs=N) call with a callback (by default one fit() call per
epoch, as the example does; some fit() calls end in a teardown stall of seconds).

    python bench/reference/keras_addition.py --single-fit --epochs 40 --csv keras.csv
"""
import argparse
import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from addition_data import CSV_COLUMNS, add_common_flags, exact_match, make_dataset  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(ap)
    ap.add_argument("--single-fit", action="store_true",
                    help="one fit(epochs=N) call with a per-epoch callback instead of one fit() per epoch")
    args = ap.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf
    from keras import layers

    data = make_dataset(args.digits, args.op, args.training_size, seed=args.seed)
    x_train, y_train, x_val, y_val = data["x_train"], data["y_train"], data["x_val"], data["y_val"]
    n_chars = len(data["chars"])
    print(f"# tensorflow {tf.__version__}, keras {keras.__version__}; {len(x_train)} train / "
          f"{len(x_val)} validation, batch {args.batch_size}, seed {args.seed}", flush=True)

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        layers.Input((data["question_len"], n_chars)),
        layers.LSTM(args.hidden),
        layers.RepeatVector(data["answer_len"]),
        layers.LSTM(args.hidden, return_sequences=True),
        layers.TimeDistributed(layers.Dense(n_chars, activation="softmax")),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    print(f"# parameters {model.count_params()}", flush=True)

    out = open(args.csv, "w", newline="")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    print(",".join(CSV_COLUMNS), flush=True)
    start = time.perf_counter()
    state = dict(cum_fit=0.0, streak=0, stop=False)

    def record(epoch, fit_s, logs):
        state["cum_fit"] += fit_s
        t0 = time.perf_counter()
        exact = exact_match(model.predict(x_val, batch_size=1024, verbose=0), y_val)
        eval_s = time.perf_counter() - t0
        row = [epoch, f"{fit_s:.3f}", f"{logs['loss']:.5f}", f"{logs['accuracy']:.5f}",
               f"{logs['val_loss']:.5f}", f"{logs['val_accuracy']:.5f}", f"{exact:.5f}",
               f"{eval_s:.3f}", f"{state['cum_fit']:.3f}", f"{time.perf_counter() - start:.3f}"]
        writer.writerow(row)
        out.flush()
        print(",".join(map(str, row)), flush=True)
        state["streak"] = state["streak"] + 1 if args.stop_at > 0 and exact >= args.stop_at else 0
        if args.stop_at > 0 and state["streak"] >= args.patience:
            print(f"# stopped: validation exact match >= {args.stop_at} for {args.patience} epochs", flush=True)
            state["stop"] = True

    if args.single_fit:
        class Record(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                record(epoch + 1, time.perf_counter() - self.t0, logs)
                if state["stop"]:
                    self.model.stop_training = True

        model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                  validation_data=(x_val, y_val), verbose=0, callbacks=[Record()])
    else:
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=1,
                                validation_data=(x_val, y_val), verbose=0)
            record(epoch, time.perf_counter() - t0, {k: v[-1] for k, v in history.history.items()})
            if state["stop"]:
                break
    out.close()

    if args.infer_seconds > 0:
        batch = np.resize(x_val, (1024,) + x_val.shape[1:])
        for _ in range(3):
            model.predict_on_batch(batch)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.infer_seconds:
            model.predict_on_batch(batch)
            n += len(batch)
        print(f"answers_per_sec={n / (time.perf_counter() - t0):.1f}", flush=True)


if __name__ == "__main__":
    main()
