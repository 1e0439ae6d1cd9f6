//! `seqcalc serve` over HTTP: every endpoint, trainings started, stopped and resumed, the
//! playground, and what a hostile request gets (path traversal in every form, symlinks out of
//! the runs directory, oversized and malformed requests, changes without the token or from
//! another origin, other hosts).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
    token: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `seqcalc serve` on a free port of loopback with an empty runs directory (or `dir`).
fn serve_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
    let runs = dir.path().join("runs");
    let mut child = common::bin()
        .args(["serve", "--port", "0", "--runs-dir"])
        .arg(&runs)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("seqcalc serve starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut addr, mut token) = (String::new(), String::new());
    let mut line = String::new();
    while addr.is_empty() || token.is_empty() {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "serve printed no address"
        );
        if let Some(rest) = line.split("http://").nth(1) {
            addr = rest.split('/').next().unwrap().to_string();
        }
        if line.starts_with("access token") {
            token = line.trim().rsplit(": ").next().unwrap().to_string();
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = out.read_to_string(&mut sink);
    });
    Server {
        child,
        addr,
        token,
        dir,
    }
}

fn serve(extra: &[&str]) -> Server {
    serve_in(tempfile::tempdir().unwrap(), extra)
}

struct Resp {
    status: u16,
    head: String,
    body: String,
}

/// Sends raw request bytes and reads the whole response (the connection is closed after it).
fn raw(addr: &str, req: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        head: head.to_string(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Server {
    fn get(&self, path: &str) -> Resp {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        raw(&self.addr, req.as_bytes())
    }

    /// A POST with `extra` headers.
    fn post_with(&self, path: &str, body: &str, extra: &str) -> Resp {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            self.addr,
            body.len()
        );
        raw(&self.addr, req.as_bytes())
    }

    /// A POST as this server's own page sends it (same origin).
    fn post(&self, path: &str, body: &str) -> Resp {
        self.post_with(path, body, &format!("Origin: http://{}\r\n", self.addr))
    }

    fn runs(&self) -> std::path::PathBuf {
        self.dir.path().join("runs")
    }

    /// Waits until the run's status (as the runs list tells it) is `want`.
    fn wait_status(&self, name: &str, want: &str, secs: u64) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            let r = self.get(&format!("/api/runs/{name}"));
            if r.status == 200 {
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                if v["status"] == want {
                    return v;
                }
                assert!(
                    v["status"] != "failed",
                    "{name} failed: {}",
                    v["live"]["error"]
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "{name} never became {want}: {} {}",
                r.status,
                r.body
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn json(r: &Resp) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {} {}", r.status, r.body))
}

/// Trains a tiny run with the CLI into `runs/name`.
fn train_cli(runs: &Path, name: &str, extra: &[&str]) {
    let mut args = vec!["train", "--name", name, "--runs-dir"];
    let runs = runs.to_str().unwrap();
    args.push(runs);
    args.extend_from_slice(&[
        "--digits",
        "2",
        "--size",
        "400",
        "--hidden",
        "16",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--batch-size",
        "32",
    ]);
    args.extend_from_slice(extra);
    let o = common::run(&args);
    assert!(o.status.success(), "{}", common::text(&o));
}

const TINY: &str = r#"{"name":"tiny","digits":2,"hidden":16,"size":600,"batch_size":16,"epochs":3000,"patience":0,"seed":5}"#;

#[test]
fn pages_and_assets_are_served_with_their_types() {
    let s = serve(&[]);
    for p in ["/", "/play", "/train", "/runs/anything"] {
        let r = s.get(p);
        assert_eq!(r.status, 200, "{p}");
        assert!(
            r.head.to_lowercase().contains("content-type: text/html"),
            "{p}: {}",
            r.head
        );
        assert!(r.body.contains("/assets/app.js"), "{p}");
        assert!(
            r.head.to_lowercase().contains("content-security-policy"),
            "{}",
            r.head
        );
    }
    let js = s.get("/assets/app.js");
    assert_eq!(js.status, 200);
    assert!(js.head.contains("text/javascript"));
    assert!(js.body.contains("EventSource"));
    assert!(s.get("/assets/app.css").head.contains("text/css"));
    assert_eq!(s.get("/nope").status, 404);
    assert_eq!(json(&s.get("/api/runs")), serde_json::json!([]));
    let exps = json(&s.get("/api/experiments"));
    assert!(exps
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "keras-addition"));
    let t = json(&s.get("/api/trainings"));
    assert!(t["slots"].as_u64().unwrap() >= 1 && t["running"] == serde_json::json!([]));
}

#[test]
fn runs_from_the_shell_are_listed_detailed_and_answer_questions() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    train_cli(&runs, "plain", &[]);
    train_cli(
        &runs,
        "att",
        &["--attention", "--decoder", "teacher-forced"],
    );
    let s = serve_in(dir, &[]);
    let list = json(&s.get("/api/runs"));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    for r in list.as_array().unwrap() {
        assert_eq!(r["status"], "finished", "{r}");
        assert_eq!(r["progress"], 2, "{r}");
        assert_eq!(r["kind"], "seq2seq");
    }
    let d = json(&s.get("/api/runs/plain"));
    assert_eq!(d["history"].as_array().unwrap().len(), 2);
    assert_eq!(d["config"]["kind"], "seq2seq");
    assert_eq!(d["manifest"]["outcome"], "finished");
    assert!(d["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "curves.svg"));
    let svg = s.get("/api/runs/plain/files/curves.svg");
    assert_eq!(svg.status, 200);
    assert!(svg.head.contains("image/svg+xml") && svg.body.contains("<svg"));
    assert_eq!(
        s.get("/api/runs/plain/files/weights.safetensors").status,
        404
    );
    assert_eq!(s.get("/api/runs/plain/files/checkpoint").status, 404);
    assert_eq!(s.get("/api/runs/plain/files/nothing.json").status, 404);
    assert_eq!(s.get("/api/runs/missing").status, 404);
    let samples = json(&s.get("/api/runs/plain/samples"));
    let samples = samples.as_array().unwrap();
    assert_eq!(samples.len(), 10, "{samples:?}");
    for q in samples {
        let right = q["target"] == q["prediction"];
        assert_eq!(q["correct"], right, "{q}");
    }
    assert_eq!(s.get("/api/runs/%2e%2e/samples").status, 400);

    // The playground: an answer with per-character confidences, the attention where the model
    // has it, and predict's message for a bad question.
    let a = json(&s.post("/api/runs/plain/answer", r#"{"question":"12+34"}"#));
    assert!(
        a["output"].is_string() && a["confidence"].is_number(),
        "{a}"
    );
    assert!(!a["steps"].as_array().unwrap().is_empty(), "{a}");
    assert!(
        a["attention"].is_null() && a["attention_note"].is_string(),
        "{a}"
    );
    let a = json(&s.post("/api/runs/att/answer", r#"{"question":"12+34"}"#));
    let att = &a["attention"];
    assert_eq!(att["columns"].as_array().unwrap().len(), 5, "{a}");
    assert!(!att["rows"].as_array().unwrap().is_empty(), "{a}");
    let bad = s.post("/api/runs/plain/answer", r#"{"question":"12+x4"}"#);
    assert_eq!(bad.status, 400);
    let predict = common::run(&[
        "predict",
        "--model",
        s.runs().join("plain").to_str().unwrap(),
        "12+x4",
    ]);
    let want = common::text(&predict);
    let msg = json(&bad)["error"].as_str().unwrap().to_string();
    assert!(want.contains(&msg), "{want} vs {msg}");
    assert_eq!(
        s.post("/api/runs/plain/answer", r#"{"question":"  "}"#)
            .status,
        400
    );
    let long = format!(r#"{{"question":"{}"}}"#, "1".repeat(5000));
    assert_eq!(s.post("/api/runs/plain/answer", &long).status, 400);
}

#[test]
fn no_path_outside_the_runs_directory_is_reachable() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    train_cli(&runs, "r", &[]);
    // A run directory outside, linked in; a secret file outside, linked into a run.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(runs.join("r/config.json"), outside.join("config.json")).unwrap();
    std::fs::write(dir.path().join("secret.json"), r#"{"secret":"s3cr3t"}"#).unwrap();
    std::os::unix::fs::symlink(&outside, runs.join("linked")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.json"), runs.join("r/leak.json")).unwrap();
    let s = serve_in(dir, &[]);
    let list = s.get("/api/runs").body;
    assert!(!list.contains("linked"), "{list}");
    let attempts = [
        "/api/runs/..",
        "/api/runs/%2e%2e",
        "/api/runs/%2E%2E/files/secret.json",
        "/api/runs/..%2Fsecret.json",
        "/api/runs/..%2f..%2f..%2fetc%2fpasswd",
        "/api/runs/%2Fetc%2Fpasswd",
        "/api/runs/%2Fetc",
        "/api/runs/../../etc/passwd",
        "/api/runs/r/../../secret.json",
        "/api/runs/r/files/..%2F..%2Fsecret.json",
        "/api/runs/r/files/%2E%2E%2Fsecret.json",
        "/api/runs/r/files/%2Fetc%2Fpasswd",
        "/api/runs/r/files/..",
        "/api/runs/r/files/leak.json",
        "/api/runs/linked",
        "/api/runs/linked/files/config.json",
        "/api/runs/linked/events",
        "/api/runs/r%00/files/config.json",
        "/api/runs/r/files/config.json%00.svg",
        "/assets/..%2F..%2FCargo.toml",
        "/..%2F..%2Fetc%2Fpasswd",
        "//etc/passwd",
    ];
    for p in attempts {
        let r = s.get(p);
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{p}: {} {}",
            r.status,
            r.body
        );
        assert!(
            !r.body.contains("s3cr3t") && !r.body.contains("root:"),
            "{p}: {}",
            r.body
        );
    }
    assert_eq!(s.get("/api/runs/linked").status, 403);
    assert_eq!(s.get("/api/runs/r/files/leak.json").status, 403);
    for p in [
        "/api/runs/%2e%2e/answer",
        "/api/runs/linked/answer",
        "/api/runs/..%2Fr/stop",
        "/api/runs/linked/resume",
    ] {
        let r = s.post(p, r#"{"question":"1+1"}"#);
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{p}: {} {}",
            r.status,
            r.body
        );
    }
    // A run name that is a path: refused before anything is written.
    for name in ["../escape", "/tmp/abs", "a/b", "..", ""] {
        let body = format!(r#"{{"name":"{name}","digits":2,"hidden":8,"size":200,"epochs":1}}"#);
        let r = s.post("/api/train", &body);
        assert_eq!(r.status, 400, "{name}: {}", r.body);
    }
    assert!(!s.dir.path().join("escape").exists() && !Path::new("/tmp/abs").exists());
}

#[test]
fn oversized_and_malformed_requests_are_refused() {
    let s = serve(&[]);
    let big = format!(r#"{{"name":"x","pad":"{}"}}"#, "a".repeat(100_000));
    assert_eq!(s.post("/api/train", &big).status, 413);
    let long = format!("/api/runs/{}", "a".repeat(5000));
    assert_eq!(s.get(&long).status, 414);
    let r = s.post("/api/train", "{not json");
    assert!(matches!(r.status, 400 | 422), "{} {}", r.status, r.body);
    let r = s.post("/api/train", r#"{"digits":"three"}"#);
    assert!(matches!(r.status, 400 | 422), "{}", r.status);
    let r = s.post("/api/train", r#"{"unknown_knob":1}"#);
    assert!(matches!(r.status, 400 | 422), "{}", r.status);
    let r = s.post("/api/train", r#"{"cell":"transistor"}"#);
    assert_eq!(r.status, 400);
    assert!(
        json(&r)["error"].as_str().unwrap().contains("lstm"),
        "{}",
        r.body
    );
    let r = s.post("/api/train", r#"{"digits":0,"name":"zero"}"#);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.post("/api/train", r#"{"experiment":"no-such-thing"}"#);
    assert_eq!(r.status, 400);
    // Not HTTP at all, a header too large, a body longer than announced: no answer but an error.
    let r = raw(&s.addr, b"\x16\x03\x01 garbage\r\n\r\n");
    assert!(r.status == 0 || r.status == 400, "{}", r.status);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        s.addr,
        "b".repeat(1 << 20)
    );
    let r = raw(&s.addr, huge.as_bytes());
    assert!(
        r.status == 0 || r.status == 431 || r.status == 400,
        "{}",
        r.status
    );
    // The server still answers.
    assert_eq!(s.get("/api/runs").status, 200);
}

#[test]
fn changes_need_the_token_or_the_same_origin_and_hosts_are_checked() {
    let s = serve(&[]);
    let body = r#"{"name":"t","digits":2,"hidden":8,"size":200,"epochs":1}"#;
    // No origin, another origin, a wrong token, a token only in a cookie or the URL.
    let r = s.post_with("/api/train", body, "");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s.post_with("/api/train", body, "Origin: http://evil.example\r\n");
    assert_eq!(r.status, 403);
    let r = s.post_with("/api/train", body, "Sec-Fetch-Site: cross-site\r\n");
    assert_eq!(r.status, 403);
    let r = s.post_with("/api/train", body, "X-Seqcalc-Token: 0123\r\n");
    assert_eq!(r.status, 401);
    let r = s.post_with(
        "/api/train",
        body,
        &format!(
            "Cookie: seqcalc_token={}\r\nOrigin: http://evil.example\r\n",
            s.token
        ),
    );
    assert_eq!(r.status, 403);
    let r = s.post_with(&format!("/api/train?token={}", s.token), body, "");
    assert_eq!(r.status, 403);
    for p in [
        "/api/runs/t/stop",
        "/api/runs/t/resume",
        "/api/runs/t/answer",
    ] {
        assert_eq!(s.post_with(p, "{}", "").status, 403, "{p}");
    }
    assert!(!s.runs().join("t").exists());
    // The token in a header, or a same-origin page.
    let r = s.post_with(
        "/api/train",
        body,
        &format!("X-Seqcalc-Token: {}\r\n", s.token),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    s.wait_status("t", "finished", 120);
    let body2 = body.replace("\"t\"", "\"t2\"");
    let r = s.post_with("/api/train", &body2, "Sec-Fetch-Site: same-origin\r\n");
    assert_eq!(r.status, 202, "{}", r.body);
    s.wait_status("t2", "finished", 120);
    // Another host name (DNS rebinding) is refused on loopback.
    let r = raw(
        &s.addr,
        b"GET /api/runs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 421);
    let r = raw(
        &s.addr,
        b"GET /api/runs HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(r.status == 421 || r.status == 400, "{}", r.status);
}

#[test]
fn beyond_loopback_every_request_needs_the_token() {
    let s = serve(&["--host", "0.0.0.0"]);
    let port = s.addr.rsplit(':').next().unwrap().to_string();
    let local = format!("127.0.0.1:{port}");
    let get = |path: &str, extra: &str| {
        raw(
            &local,
            format!("GET {path} HTTP/1.1\r\nHost: {local}\r\nConnection: close\r\n{extra}\r\n")
                .as_bytes(),
        )
    };
    assert_eq!(get("/api/runs", "").status, 401);
    assert_eq!(get("/", "").status, 401);
    assert_eq!(get("/api/runs?token=wrong", "").status, 401);
    let r = get(&format!("/?token={}", s.token), "");
    assert_eq!(r.status, 200, "{} {}", s.token, r.body);
    assert!(
        r.head.contains("seqcalc_token=") && r.head.contains("HttpOnly"),
        "{}",
        r.head
    );
    let cookie = format!("Cookie: seqcalc_token={}\r\n", s.token);
    assert_eq!(get("/api/runs", &cookie).status, 200);
    assert_eq!(
        get(
            "/api/runs",
            &format!("Authorization: Bearer {}\r\n", s.token)
        )
        .status,
        200
    );
}

/// Reads a live stream until `pred` holds for an update (or the time runs out).
fn follow(
    addr: &str,
    path: &str,
    secs: u64,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut st = TcpStream::connect(addr).unwrap();
    st.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(
        st,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let t0 = Instant::now();
    let mut buf = String::new();
    let mut chunk = [0u8; 65536];
    while t0.elapsed() < Duration::from_secs(secs) {
        if let Ok(n) = st.read(&mut chunk) {
            assert!(n > 0, "stream closed: {buf}");
            buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
        assert!(buf
            .to_lowercase()
            .contains("content-type: text/event-stream"));
        for line in buf.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                if pred(&v) {
                    return v;
                }
            }
        }
    }
    panic!("no matching update in {secs} s: {buf}");
}

#[test]
fn a_training_is_started_followed_stopped_resumed_and_slots_are_bounded() {
    let s = serve(&["--max-trainings", "1"]);
    let r = s.post("/api/train", TINY);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(json(&r)["name"], "tiny");
    // The live stream pushes the history as epochs end, with samples and progress.
    let u = follow(&s.addr, "/api/runs/tiny/events", 120, |v| {
        v["history"].as_array().is_some_and(|h| h.len() >= 2)
            && v["live"]["samples"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    });
    assert_eq!(u["status"], "training", "{u}");
    assert!(u["live"]["epochs"] == 3000);
    // One slot: a second training is refused with a message, not queued.
    let other = TINY.replace("\"tiny\"", "\"other\"");
    let r = s.post("/api/train", &other);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(json(&r)["error"]
        .as_str()
        .unwrap()
        .contains("slots are busy"));
    // The same name again.
    assert_eq!(s.post("/api/train", TINY).status, 409);
    assert_eq!(
        json(&s.get("/api/trainings"))["running"],
        serde_json::json!(["tiny"])
    );
    // Stop: a checkpoint, as on Ctrl-C.
    assert_eq!(s.post("/api/runs/tiny/stop", "").status, 202);
    let d = s.wait_status("tiny", "stopped", 60);
    assert_eq!(d["manifest"]["outcome"], "interrupted", "{d}");
    assert!(s.runs().join("tiny/checkpoint").is_dir());
    let epochs_then = d["history"].as_array().unwrap().len();
    assert_eq!(s.post("/api/runs/tiny/stop", "").status, 409);
    // Resume continues from the checkpoint; a resume may bound the epochs.
    let r = s.post(
        "/api/runs/tiny/resume",
        &format!(r#"{{"epochs":{}}}"#, epochs_then + 3),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let d = s.wait_status("tiny", "finished", 120);
    let h = d["history"].as_array().unwrap();
    assert_eq!(h.len(), epochs_then + 3, "{d}");
    assert_eq!(h.last().unwrap()["epoch"], epochs_then + 3);
    assert_eq!(d["manifest"]["outcome"], "finished");
    assert!(s.post("/api/runs/tiny/resume", r#"{"threads":2}"#).status >= 400);
    assert_eq!(s.post("/api/runs/missing/resume", "").status, 404);
    // Stopped and resumed, it ends with the same bits as the same training never stopped.
    let straight = TINY
        .replace("\"tiny\"", "\"straight\"")
        .replace("3000", &(epochs_then + 3).to_string());
    assert_eq!(s.post("/api/train", &straight).status, 202);
    let d2 = s.wait_status("straight", "finished", 120);
    let losses = |d: &serde_json::Value| -> Vec<(f64, f64)> {
        d["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["train_loss"].as_f64().unwrap(),
                    r["val_loss"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(losses(&d), losses(&d2));
    let weights = |n: &str| std::fs::read(s.runs().join(n).join("weights.safetensors")).unwrap();
    assert!(weights("tiny") == weights("straight"), "the weights differ");
}

#[test]
fn ctrl_c_checkpoints_every_training_then_ends() {
    let mut s = serve(&[]);
    let two = TINY.replace("\"tiny\"", "\"second\"");
    assert_eq!(s.post("/api/train", TINY).status, 202);
    assert_eq!(s.post("/api/train", &two).status, 202);
    for n in ["tiny", "second"] {
        follow(&s.addr, &format!("/api/runs/{n}/events"), 120, |v| {
            v["history"].as_array().is_some_and(|h| !h.is_empty())
        });
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGINT) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "serve did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    for n in ["tiny", "second"] {
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(s.runs().join(n).join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(m["outcome"], "interrupted", "{n}");
    }
    // The CLI resumes what the server stopped.
    let o = common::run(&[
        "train",
        "--resume",
        s.runs().join("tiny").to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    assert!(o.status.success(), "{}", common::text(&o));
}

#[test]
fn a_training_started_in_a_shell_is_seen_training_and_stopped_from_the_server() {
    let s = serve(&[]);
    let runs = s.runs();
    std::fs::create_dir_all(&runs).unwrap();
    let mut shell = common::bin()
        .args(["train", "--name", "shell", "--runs-dir"])
        .arg(&runs)
        .args([
            "--digits",
            "2",
            "--size",
            "600",
            "--hidden",
            "16",
            "--batch-size",
            "16",
            "--epochs",
            "3000",
            "--patience",
            "0",
            "--threads",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The shell's process holds the run's lock: the server says it is training.
    s.wait_status("shell", "training", 60);
    let t0 = Instant::now();
    while !runs.join("shell/checkpoint").is_dir() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint yet");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stop needs the token or the same origin, like every change.
    let r = raw(
        &s.addr,
        format!(
            "POST /api/runs/shell/stop HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            s.addr
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        shell.try_wait().unwrap().is_none(),
        "stopped without the token"
    );
    // With it, the shell's training stops as on Ctrl-C: a checkpoint, outcome interrupted.
    assert_eq!(s.post("/api/runs/shell/stop", "").status, 202);
    let status = shell.wait().unwrap();
    assert!(!status.success(), "an interrupted training exits non-zero");
    let d = s.wait_status("shell", "stopped", 30);
    assert_eq!(d["manifest"]["outcome"], "interrupted", "{d}");
    assert_eq!(s.post("/api/runs/shell/stop", "").status, 409);
    // The server can resume it.
    let done = d["history"].as_array().unwrap().len();
    let r = s.post(
        "/api/runs/shell/resume",
        &format!(r#"{{"epochs":{}}}"#, done + 1),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    s.wait_status("shell", "finished", 60);
}

#[test]
fn a_long_addition_run_gets_samples_at_and_beyond_its_training_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let o = common::run(&[
        "experiment",
        "run",
        "addition-exact-aligned",
        "--threads",
        "1",
        "--runs-dir",
        runs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::text(&o));
    let s = serve_in(dir, &[]);
    let d = json(&s.get("/api/runs/addition-exact-aligned"));
    assert_eq!(
        (&d["kind"], &d["status"]),
        (&"pair-gru".into(), &"finished".into()),
        "{d}"
    );
    let samples = json(&s.get("/api/runs/addition-exact-aligned/samples"));
    let samples = samples.as_array().unwrap();
    assert_eq!(samples.len(), 10, "{samples:?}");
    let lens: Vec<usize> = samples
        .iter()
        .map(|q| {
            q["question"]
                .as_str()
                .unwrap()
                .split('+')
                .next()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(lens, [3, 3, 3, 3, 6, 6, 6, 15, 15, 15]);
    for q in samples {
        assert_eq!(q["correct"], q["target"] == q["prediction"], "{q}");
    }
    // The trained lengths are answered right, and the targets are the sums.
    for q in &samples[..4] {
        let (a, b) = q["question"].as_str().unwrap().split_once('+').unwrap();
        let sum = a.parse::<u64>().unwrap() + b.parse::<u64>().unwrap();
        assert_eq!(q["target"], sum.to_string(), "{q}");
        assert_eq!(q["correct"], true, "{q}");
    }
}

#[test]
fn the_playground_shows_a_transformers_attention() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    train_cli(&runs, "tf", &["--arch", "transformer", "--heads", "2"]);
    let s = serve_in(dir, &[]);
    let a = json(&s.post("/api/runs/tf/answer", r#"{"question":"12+34"}"#));
    let att = &a["attention"];
    assert!(a["attention_note"].is_null(), "{a}");
    assert_eq!(att["columns"].as_array().unwrap().len(), 5, "{a}");
    let rows = att["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "{a}");
    for r in rows {
        let w: Vec<f64> = r[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let pad = r[2].as_f64().unwrap();
        assert_eq!(w.len(), 5, "{r}");
        assert!(w.iter().all(|&x| (0.0..=1.0).contains(&x)), "{r}");
        assert!(w.iter().sum::<f64>() + pad <= 1.0 + 1e-5, "{r}");
    }
}
