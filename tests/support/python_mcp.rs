//! `tests/infra/python/mcp_server.py`: an OAuth-protected MCP server built with the official
//! MCP Python SDK, run with the project venv that `scripts/setup-test-deps.sh` creates
//! (`$MCPOAUTH_VENV`, default `~/.cache/mcp-oauth-operator/venv`). Same interface as
//! [`super::McpServer`]: stateless Streamable HTTP, IdP-issued JWTs whose `aud` is its own
//! `/mcp` URL, tools `whoami` and `echo`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

/// Python start-up (imports of the SDK) is slower than node's.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_LINES: usize = 200;

type Logs = Arc<Mutex<VecDeque<String>>>;

/// The venv's python (same rule as `scripts/setup-test-deps.sh`).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("MCPOAUTH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/mcp-oauth-operator/venv")
        });
    venv.join("bin/python")
}

/// `tests/infra/python` in this crate.
pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/infra/python")
}

/// A running Python SDK server; killed on drop (and it exits by itself when our end of its
/// stdin closes, should the test process die without dropping it).
pub struct PythonMcpServer {
    child: Child,
    _stdin: ChildStdin,
    url: String,
    logs: Logs,
}

impl PythonMcpServer {
    /// Starts a server protected by `issuer` requiring scope `mcp:tools`.
    pub async fn start(issuer: &str) -> Self {
        Self::start_with_scopes(issuer, "mcp:tools").await
    }

    /// Starts a server requiring the space-separated `required_scopes` ("" for none).
    pub async fn start_with_scopes(issuer: &str, required_scopes: &str) -> Self {
        let python = venv_python();
        assert!(
            python.is_file(),
            "{} is missing; run scripts/setup-test-deps.sh (it creates the venv with the `mcp` package)",
            python.display()
        );
        let mut command = Command::new(&python);
        command
            .arg("mcp_server.py")
            .current_dir(python_dir())
            .env("ISSUER", issuer)
            .env("PORT", "0")
            .env("REQUIRED_SCOPES", required_scopes)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", python.display()));
        let stdin = child.stdin.take().expect("stdin is piped");
        let logs: Logs = Arc::new(Mutex::new(VecDeque::new()));
        let (ready_tx, ready_rx) = oneshot::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(drain(stdout, Arc::clone(&logs), Some(ready_tx)));
        tokio::spawn(drain(stderr, Arc::clone(&logs), None));
        let url = match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                let status = child.wait().await.ok();
                panic!(
                    "python-mcp exited before it was ready (status {status:?}); if the `mcp` \
                     package is missing run scripts/setup-test-deps.sh. Output:\n{}",
                    tail(&logs)
                )
            }
            Err(_) => {
                let _ = child.start_kill();
                panic!(
                    "python-mcp did not print READY within {READY_TIMEOUT:?}. Output:\n{}",
                    tail(&logs)
                )
            }
        };
        Self {
            child,
            _stdin: stdin,
            url,
            logs,
        }
    }

    /// The MCP endpoint and OAuth resource identifier, `http://127.0.0.1:<port>/mcp`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The RFC 9728 protected-resource metadata URL.
    pub fn resource_metadata_url(&self) -> String {
        let origin = self.url.trim_end_matches("/mcp");
        format!("{origin}/.well-known/oauth-protected-resource/mcp")
    }

    /// The most recent output lines.
    pub fn logs(&self) -> String {
        tail(&self.logs)
    }

    /// Kills the process and waits until it is gone.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for PythonMcpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl std::fmt::Debug for PythonMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonMcpServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Reads lines until EOF, keeps the last ones, echoes them to stderr and hands the first
/// `READY <url>` line to `ready`.
async fn drain(
    stream: impl AsyncRead + Unpin,
    logs: Logs,
    mut ready: Option<oneshot::Sender<String>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(value) = line.strip_prefix("READY ")
            && let Some(sender) = ready.take()
        {
            let _ = sender.send(value.trim().to_owned());
        }
        eprintln!("[python-mcp] {line}");
        let mut logs = logs.lock().expect("log buffer lock");
        if logs.len() == LOG_LINES {
            logs.pop_front();
        }
        logs.push_back(line);
    }
}

fn tail(logs: &Logs) -> String {
    let logs = logs.lock().expect("log buffer lock");
    logs.iter().cloned().collect::<Vec<_>>().join("\n")
}
