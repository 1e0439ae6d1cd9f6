"""Runs the runs of a seqcalc sweep as tasks on a Ray cluster.

`seqcalc sweep --ray ADDRESS` starts this driver (it is built into the binary) with the path of
a plan: a setup line, then one JSON line per run still to do. Each run becomes one Ray task
(num_cpus = the run's threads) that starts `seqcalc sweep-cell` on its node; that trains the
run into the sweep directory (shared storage) and prints its result. The driver writes one JSON
line per event to standard output, for seqcalc to record:

    {"event": "result", "id": ..., "result": {...}, "node": ...}   a run finished
    {"event": "error", "id": ..., "message": ...}                  a run failed by its own fault
    {"event": "fatal", "message": ...}                             the driver cannot go on
    {"event": "done"}                                              every run accounted for

Faults: a task whose node (or worker, or seqcalc process) dies is retried elsewhere (Ray's
max_retries) and resumes from the run's last checkpoint; a run that fails by a fault of its own
(seqcalc exits with an error) is reported once, not retried. When standard input closes (seqcalc
stopped or was killed), the running tasks are cancelled: each run checkpoints and stops.
"""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque

# Seconds to wait for a HOST:PORT address to answer.
CONNECT_SECS = 10
# Seconds a cancelled run gets to write its checkpoint before it is killed.
STOP_GRACE_SECS = 60

_out_lock = threading.Lock()
_stop = threading.Event()


def emit(event):
    """One JSON line on standard output; a reader that went away means stop."""
    line = json.dumps(event) + "\n"
    with _out_lock:
        try:
            sys.stdout.write(line)
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            _stop.set()


def fatal(message):
    emit({"event": "fatal", "message": message})
    sys.exit(3)


class CellLost(Exception):
    """The run's process was killed (its node or worker went away): Ray tries it again."""


def run_cell(binary, ship, request):
    """The Ray task: `seqcalc sweep-cell` with the request on its standard input."""
    import ray

    node = ray.util.get_node_ip_address()
    exe = os.path.abspath("seqcalc") if ship else binary
    try:
        if ship and not os.access(exe, os.X_OK):
            os.chmod(exe, 0o755)
        env = dict(os.environ, SEQCALC_PARENT_PID=str(os.getpid()))
        proc = subprocess.Popen(
            [exe, "sweep-cell"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as e:
        return {"error": f"could not start {exe} on {node}: {e}", "node": node}
    try:
        out, err = proc.communicate(json.dumps(request).encode())
    except BaseException:
        # Cancelled: the run writes a checkpoint and stops.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_GRACE_SECS)
        except BaseException:
            proc.kill()
        raise
    code = proc.returncode
    if code == 0:
        return {"result": json.loads(out), "node": node}
    if code < 0 or code in (130, 143):
        # Killed from outside (SIGKILL, or SIGTERM when its worker died): not its fault.
        raise CellLost(f"seqcalc exited with {code} on {node}")
    lines = [l for l in err.decode(errors="replace").splitlines() if l.strip()]
    message = lines[-1] if lines else f"seqcalc exited with {code}"
    if message.startswith("error: "):
        message = message[len("error: ") :]
    return {"error": f"{message} (on {node})", "node": node}


def reachable(address):
    """A HOST:PORT that does not answer is one line now, not Ray's minutes of retrying."""
    if "://" in address or ":" not in address:
        return
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECS).close()
    except (OSError, ValueError) as e:
        fatal(f"could not connect to the Ray cluster at {address}: {e}")


def main():
    plan_path = sys.argv[1]
    with open(plan_path) as f:
        setup = json.loads(f.readline())
        cells = [json.loads(line) for line in f if line.strip()]
    try:
        import ray
    except Exception as e:
        fatal(
            f"{sys.executable} cannot import ray ({e}); install it "
            '(pip install "ray[default]") or name a Python that has it with --python'
        )

    connected = threading.Event()

    def watch_stdin():
        # Raw reads: a buffered reader's lock would stall the interpreter's shutdown.
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        _stop.set()
        if not connected.is_set():
            # Stopped while connecting: nothing submitted, nothing to cancel.
            os._exit(3)

    threading.Thread(target=watch_stdin, daemon=True).start()

    address = setup["address"]
    binary, ship = setup["binary"], setup["ship"]
    runtime_env = {}
    tmp = None
    if ship:
        # The binary travels with the job: Ray uploads the directory once, each node
        # fetches it once.
        tmp = tempfile.mkdtemp(prefix="seqcalc-ray-")
        shutil.copy2(binary, os.path.join(tmp, "seqcalc"))
        runtime_env["working_dir"] = tmp
    reachable(address)
    try:
        ray.init(
            address=address,
            runtime_env=runtime_env,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        fatal(f"could not connect to the Ray cluster at {address}: {first}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    connected.set()

    need = max(c["num_cpus"] for c in cells)
    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    if not cpus or max(cpus) < need:
        have = ", ".join(f"{c:g}" for c in cpus) or "none"
        fatal(
            f"no node of the cluster at {address} has {need} CPUs for a run "
            f"(its nodes have {have}); use fewer --threads"
        )

    task = ray.remote(run_cell)
    retries = setup["retries"]
    limit = setup["max_in_flight"] or len(cells)
    queue = deque(cells)
    pending = {}

    def report(ref, cid, cancelled=False):
        try:
            out = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return
        except ray.exceptions.RayError as e:
            if cancelled:
                return
            cause = (str(e).strip().splitlines() or [type(e).__name__])[-1]
            emit(
                {
                    "event": "error",
                    "id": cid,
                    "message": f"lost {retries + 1} times, giving up (last: {cause})",
                }
            )
            return
        if "result" in out:
            emit({"event": "result", "id": cid, "result": out["result"], "node": out["node"]})
        else:
            emit({"event": "error", "id": cid, "message": out["error"]})

    while (queue or pending) and not _stop.is_set():
        while queue and len(pending) < limit:
            c = queue.popleft()
            ref = task.options(
                num_cpus=c["num_cpus"],
                max_retries=retries,
                retry_exceptions=[CellLost],
                name=f"seqcalc {c['id']}",
            ).remote(binary, ship, c["request"])
            pending[ref] = c["id"]
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5, fetch_local=False)
        for ref in ready:
            report(ref, pending.pop(ref))
    if pending:
        # Asked to stop: every running run checkpoints and stops; finished ones are reported.
        for ref in pending:
            ray.cancel(ref)
        deadline = time.time() + STOP_GRACE_SECS + 10
        while pending and time.time() < deadline:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1, fetch_local=False)
            for ref in ready:
                report(ref, pending.pop(ref), cancelled=True)
    emit({"event": "done"})
    ray.shutdown()


if __name__ == "__main__":
    main()
