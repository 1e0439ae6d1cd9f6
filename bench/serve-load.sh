#!/usr/bin/env bash
# Load on `seqcalc serve` while it trains: 50 clients follow the live run (50 server-sent event
# streams) and re-read its record (wrk, 50 connections, each paced to one request every
# PACE_MS) until the training ends, bounded in time, on loopback only. The same training runs alone (before and after)
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
serve_pid=$!
for _ in $(seq 50); do grep -q http "$work/serve.out" && break; sleep 0.1; done
addr="$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.out")"
origin=(-H "Origin: $addr" -H 'Content-Type: application/json')
# A training of 15 epochs of about a second each on one core: 3-digit addition, LSTM 128.
cfg='"digits":3,"hidden":128,"size":20000,"batch_size":128,"patience":0,"seed":1'

# Trains run $1 for $2 epochs and waits for it to finish.
train() {
  curl -sf "${origin[@]}" -d "{\"name\":\"$1\",\"epochs\":$2,$cfg}" "$addr/api/train" >/dev/null
  until curl -sf "$addr/api/runs/$1" | grep -q '"status":"finished"'; do sleep 1; done
}

# Run $1's mean train_secs per epoch (epochs 2.., the first warms caches).
epoch_secs() {
  curl -sf "$addr/api/runs/$1" | python3 -c 'import json,sys
r=json.load(sys.stdin)["history"]
print("%.4f s per epoch" % (sum(x["train_secs"] for x in r[1:])/(len(r)-1)))'
}

# CPU seconds the server's threads have used so far, but its trainings' ("train-<name>").
cpu_now() {
  local hz t sum=0
  hz=$(getconf CLK_TCK)
  for t in /proc/"$serve_pid"/task/*; do
    case "$(cat "$t/comm" 2>/dev/null)" in train-*) continue ;; esac
    sum=$(awk -v s="$sum" -v hz="$hz" '{print s + ($14 + $15) / hz}' "$t/stat" 2>/dev/null || echo "$sum")
  done
  echo "$sum"
}

cat >"$work/paced.lua" <<EOF
function delay() return $pace end
done = function(summary, latency, requests)
  io.write(string.format("requests %d, errors %d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%g %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("max %.2f ms\n", latency.max / 1000))
end
EOF

epochs=15
# Alone, under load, alone, under load, alone: the machine's other work drifts.
for round in 1 2 3; do
  train "alone-$round" "$epochs"
  echo "alone-$round: $(epoch_secs "alone-$round")"
  [ "$round" = 3 ] && break
  # Under load: the training starts, 50 streams follow it, wrk re-reads its record until it ends.
  name="loaded-$round"
  cpu0=$(cpu_now); t0=$(date +%s.%N)
  curl -sf "${origin[@]}" -d "{\"name\":\"$name\",\"epochs\":$epochs,$cfg}" "$addr/api/train" >/dev/null
  : >"$work/streams.out"
  streams=()
  for _ in $(seq 50); do
    curl -sN --max-time "$secs" "$addr/api/runs/$name/events" >>"$work/streams.out" &
    streams+=($!)
  done
  wrk -t1 -c50 -d"${secs}s" --timeout 5s --latency -s "$work/paced.lua" "$addr/api/runs/$name" >"$work/wrk.out" &
  wrk_pid=$!
  until curl -sf "$addr/api/runs/$name" | grep -q '"status":"finished"'; do sleep 0.5; done
  kill -INT "$wrk_pid"
  wait "$wrk_pid" || true
  cpu1=$(cpu_now); t1=$(date +%s.%N)
  serving=$(python3 -c "c=$cpu1-$cpu0; w=$t1-$t0; print('%.2f CPU s in %.1f s: %.1f%% of a core' % (c, w, 100*c/w))")
  echo "$name: $(epoch_secs "$name"); $(grep -c '^event: update' "$work/streams.out") stream updates"
  echo "  serving threads (all but the training's): $serving; wrk:"
  sed -n '/^requests/,$p' "$work/wrk.out"
  kill "${streams[@]}" 2>/dev/null || true
done
