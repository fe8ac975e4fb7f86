//! The binary as a user runs it: `crds`, `serve` with no configuration, with a manifests
//! folder, configuration from `MCPOAUTH_*` variables, JSON logs, bad configuration, SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-oauth-operator");

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env_remove("RUST_LOG");
        let mut child = cmd.spawn().expect("spawn the binary");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Wait for a log line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!(
            "no log line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    /// The listen address from the JSON "gateway listening" line.
    fn listen_addr(&mut self) -> String {
        let line = self.wait_for("gateway listening");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        v["listen"].as_str().expect("listen field").to_owned()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let r = reqwest::get(url).await.expect("GET");
        let s = r.status().as_u16();
        (s, r.text().await.expect("body"))
    })
}

fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(&format!("{base}/readyz"));
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SERVER_YAML: &str = r#"
apiVersion: mcpoauth.dev/v1alpha1
kind: RemoteMCPServer
metadata: { name: NAME, namespace: team-a }
spec:
  url: http://127.0.0.1:5999/mcp
  auth: { mode: none }
"#;

#[test]
fn crds_prints_both_custom_resource_definitions() {
    let out = Command::new(BIN).arg("crds").output().expect("run crds");
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).expect("utf8");
    assert!(yaml.contains("name: remotemcpservers.mcpoauth.dev"));
    assert!(yaml.contains("name: tokenexchangepolicies.mcpoauth.dev"));
    let on_disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/remotemcpservers.yaml"
    ))
    .expect("crds file");
    assert!(
        yaml.contains(on_disk.trim()),
        "crds output contains the committed CRD"
    );
}

#[test]
fn serve_starts_with_no_configuration_on_the_built_in_examples() {
    // Only the port is changed (through the environment), so parallel tests do not collide.
    let mut run = Running::spawn(
        &["serve"],
        &[
            ("MCPOAUTH_LISTEN", "127.0.0.1:0"),
            ("MCPOAUTH_LOG_FORMAT", "json"),
        ],
    );
    let addr = run.listen_addr();
    let base = format!("http://{addr}");
    wait_ready(&base);
    let (_, metrics) = get(&format!("{base}/metrics"));
    assert!(
        metrics.contains("mcpoauth_registered_servers 2"),
        "{metrics}"
    );
    let (status, doc) = get(&format!("{base}/.well-known/oauth-client.json"));
    assert_eq!(status, 200);
    assert!(
        doc.contains(&format!(
            "\"client_id\":\"{base}/.well-known/oauth-client.json\""
        )),
        "{doc}"
    );
    run.wait_for("built-in examples");
    assert!(run.terminate().success(), "clean exit on SIGTERM");
}

#[test]
fn serve_follows_a_manifests_folder_and_survives_bad_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.yaml"),
        SERVER_YAML.replace("NAME", "first"),
    )
    .expect("write");
    std::fs::write(dir.path().join("broken.yaml"), "kind: [unclosed").expect("write");
    let mut run = Running::spawn(
        &[
            "serve",
            "--manifests",
            dir.path().to_str().expect("path"),
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        &[("MCPOAUTH_CLIENT_NAME", "Env Configured Gateway")],
    );
    let base = format!("http://{}", run.listen_addr());
    wait_ready(&base);
    run.wait_for("broken.yaml");
    let (_, metrics) = get(&format!("{base}/metrics"));
    assert!(
        metrics.contains("mcpoauth_registered_servers 1"),
        "{metrics}"
    );
    let (_, doc) = get(&format!("{base}/.well-known/oauth-client.json"));
    assert!(
        doc.contains("Env Configured Gateway"),
        "flag from MCPOAUTH_CLIENT_NAME: {doc}"
    );

    std::fs::write(
        dir.path().join("b.yaml"),
        SERVER_YAML.replace("NAME", "second"),
    )
    .expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, metrics) = get(&format!("{base}/metrics"));
        if metrics.contains("mcpoauth_registered_servers 2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new manifest not picked up: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&format!("{base}/healthz")).0, 200, "still serving");
    assert!(run.terminate().success());
}

#[test]
fn insecure_public_url_is_refused_at_startup() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "http://gateway.example.com",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-insecure-http"), "{err}");
}

#[test]
fn text_logs_by_default_json_on_request() {
    let mut text = Running::spawn(&["serve", "--listen", "127.0.0.1:0"], &[]);
    let line = text.wait_for("gateway listening");
    assert!(
        serde_json::from_str::<serde_json::Value>(&line).is_err(),
        "text by default: {line}"
    );
    drop(text);
    let mut json = Running::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--log-format", "json"],
        &[],
    );
    let line = json.wait_for("gateway listening");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(v["level"], "INFO");
}

/// Every flag of every subcommand is documented in the README's configuration table (or its
/// commands section), so a user never meets an option the docs do not explain.
#[test]
fn every_flag_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let flag = regex::Regex::new(r"(?m)^\s+(?:-[a-zA-Z], )?(--[a-z0-9-]+)").expect("regex");
    let mut seen = 0;
    for sub in ["serve", "run", "rotate-keys", "crds"] {
        let out = Command::new(BIN)
            .args([sub, "--help"])
            .output()
            .expect("help");
        let help = String::from_utf8_lossy(&out.stdout);
        for m in flag.captures_iter(&help) {
            let name = &m[1];
            if name == "--help" {
                continue;
            }
            seen += 1;
            assert!(
                readme.contains(&format!("`{name}")),
                "`{sub} {name}` is not documented in README.md"
            );
        }
    }
    assert!(seen > 30, "flags were found in the help texts ({seen})");
}

/// `anonymous` identity makes every caller one user sharing every stored token: refused at start
/// by `run` and by a `serve` that listens beyond loopback, unless explicitly allowed.
#[test]
fn anonymous_identity_outside_loopback_is_refused_unless_explicitly_allowed() {
    let refused = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run the binary");
        assert_eq!(out.status.code(), Some(2), "{args:?} must exit 2");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("--identity anonymous") && err.contains("--allow-anonymous-identity"),
            "{args:?}: {err}"
        );
        err
    };
    // `run` is refused before it looks for a cluster (none is configured here).
    let err = refused(
        &["run", "--identity", "anonymous"],
        &[("KUBECONFIG", "/nonexistent")],
    );
    assert!(err.contains("`run`"), "{err}");
    let err = refused(&["serve", "--listen", "0.0.0.0:0"], &[]);
    assert!(err.contains("0.0.0.0:0"), "{err}");
    refused(&["serve"], &[("MCPOAUTH_LISTEN", "0.0.0.0:0")]);

    // Explicitly allowed (flag or variable), the non-loopback serve starts.
    let mut allowed = Running::spawn(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--public-url",
            "http://localhost:1",
            "--log-format",
            "json",
        ],
        &[("MCPOAUTH_ALLOW_ANONYMOUS_IDENTITY", "true")],
    );
    allowed.wait_for("gateway listening");
    assert!(allowed.terminate().success());
}

/// `--metrics-listen`: `/metrics` moves to its own listener (only it is served there), and the
/// main listener, the one an Ingress exposes, no longer answers it.
#[test]
fn metrics_listen_moves_metrics_off_the_main_listener() {
    let mut run = Running::spawn(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ],
        &[],
    );
    let line = run.wait_for("metrics listening");
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    let metrics = format!("http://{}", v["listen"].as_str().expect("listen field"));
    let base = format!("http://{}", run.listen_addr());
    wait_ready(&base);
    let (status, body) = get(&format!("{metrics}/metrics"));
    assert_eq!(status, 200);
    assert!(body.contains("# EOF"), "OpenMetrics text: {body}");
    assert_eq!(
        get(&format!("{base}/metrics")).0,
        404,
        "not on the main port"
    );
    assert_eq!(
        get(&format!("{metrics}/healthz")).0,
        404,
        "only /metrics there"
    );
    assert!(run.terminate().success());

    // Without the setting, the main listener serves it as before.
    let mut plain = Running::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--log-format", "json"],
        &[],
    );
    let base = format!("http://{}", plain.listen_addr());
    assert_eq!(get(&format!("{base}/metrics")).0, 200);
}
