#!/usr/bin/env bash
# Load on `seqcalc serve` while it trains: 50 clients follow the live run (50 server-sent event
# streams) and re-read its record (wrk, 50 connections, each paced to one request every
# PACE_MS), bounded in time, on loopback only. The same training runs alone (before and after)
# and under load; the mean training seconds per epoch (history.json's train_secs) compare them.
#
#   bench/serve-load.sh [SECONDS_OF_LOAD]        (needs wrk and curl; target/release/seqcalc)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
pace="${PACE_MS:-500}"
bin=target/release/seqcalc
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" serve --port 0 --runs-dir "$work/runs" --max-trainings 1 >"$work/serve.out" 2>&1 &
for _ in $(seq 50); do grep -q http "$work/serve.out" && break; sleep 0.1; done
addr="$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.out")"
origin=(-H "Origin: $addr" -H 'Content-Type: application/json')
# A training of a few minutes on one core: 3-digit addition, LSTM 128, 20,000 questions.
cfg='"digits":3,"hidden":128,"size":20000,"batch_size":128,"patience":0,"seed":1'

# Trains run $1 for $2 epochs and waits for it to finish.
train() {
  curl -sf "${origin[@]}" -d "{\"name\":\"$1\",\"epochs\":$2,$cfg}" "$addr/api/train" >/dev/null
  until curl -sf "$addr/api/runs/$1" | grep -q '"status":"finished"'; do sleep 1; done
}

# The mean train_secs of epochs 2.. of run $1 (the first warms caches).
epoch_secs() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["records"][1:]; print("%.4f" % (sum(x["train_secs"] for x in r)/len(r)))' \
    "$work/runs/$1/history.json"
}

cat >"$work/paced.lua" <<EOF
function delay() return $pace end
done = function(summary, latency, requests)
  io.write(string.format("requests %d, errors %d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for _, p in pairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%g %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("max %.2f ms\n", latency.max / 1000))
end
EOF

epochs=12
train alone-1 "$epochs"
echo "alone-1: $(epoch_secs alone-1) s per epoch"

# Under load: the training starts, 50 streams follow it, wrk reads its record.
curl -sf "${origin[@]}" -d "{\"name\":\"loaded\",\"epochs\":$epochs,$cfg}" "$addr/api/train" >/dev/null
for _ in $(seq 50); do
  curl -sN --max-time "$((secs + 5))" "$addr/api/runs/loaded/events" >>"$work/streams.out" &
done
sleep 1
wrk -t1 -c50 -d"${secs}s" --timeout 5s --latency -s "$work/paced.lua" "$addr/api/runs/loaded" | tee "$work/wrk.out"
until curl -sf "$addr/api/runs/loaded" | grep -q '"status":"finished"'; do sleep 1; done
echo "loaded: $(epoch_secs loaded) s per epoch (wrk ran for the first ${secs} s)"
echo "stream updates received: $(grep -c '^event: update' "$work/streams.out")"

train alone-2 "$epochs"
echo "alone-2: $(epoch_secs alone-2) s per epoch"
