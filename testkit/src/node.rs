//! Spawning the node test components and waiting for their `READY <url>` line.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

/// How long a component may take to print its READY line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How many output lines are kept for failure messages.
const LOG_LINES: usize = 200;

/// Environment variables the components read; cleared before each start so a
/// value in the developer's shell never leaks into a test.
const COMPONENT_ENV: &[&str] = &[
    "PORT",
    "ISSUER",
    "ISSUER_PATH",
    "ACCESS_TOKEN_TTL",
    "REFRESH_TOKEN_TTL",
    "REDIRECT_URIS",
    "ENABLE_CIMD",
    "ENABLE_DCR",
    "REQUIRED_SCOPES",
    "LOOPBACK_READY",
];

/// `tests/infra/node` in this crate.
pub fn infra_dir() -> PathBuf {
    crate::repo_root().join("tests/infra/node")
}

type Logs = Arc<Mutex<VecDeque<String>>>;

/// A running node component; killed when dropped.
pub struct NodeProcess {
    name: &'static str,
    child: Child,
    /// Held open: the component exits when it closes (see exit-with-parent.cjs).
    _stdin: ChildStdin,
    ready: String,
    logs: Logs,
}

impl NodeProcess {
    /// Runs `node <args>` in `tests/infra/node` with `env` and waits for the
    /// first stdout line `READY <value>`, which [`NodeProcess::ready_value`]
    /// then returns. The process exits when this value is dropped, and also if
    /// the test process dies without dropping it (stdin EOF).
    pub async fn start(name: &'static str, args: &[&str], env: &[(&str, String)]) -> Self {
        let dir = infra_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "{name}: {}/node_modules is missing; run scripts/setup-test-deps.sh first",
            dir.display()
        );

        let mut command = Command::new("node");
        command
            .args(["-r", "./exit-with-parent.cjs"])
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in COMPONENT_ENV {
            command.env_remove(key);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        Self::spawn(name, command).await
    }

    /// Spawns a prepared component command (stdio piped, killed on drop) and waits for its
    /// first stdout line `READY <value>`; shared by the node components and the Python server.
    pub async fn spawn(name: &'static str, mut command: Command) -> Self {
        let mut child = command.spawn().unwrap_or_else(|err| {
            panic!("{name}: cannot start ({err}); run scripts/setup-test-deps.sh first")
        });

        let stdin = child.stdin.take().expect("stdin is piped");
        let logs: Logs = Arc::new(Mutex::new(VecDeque::new()));
        let (ready_tx, ready_rx) = oneshot::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(drain(name, stdout, Arc::clone(&logs), Some(ready_tx)));
        tokio::spawn(drain(name, stderr, Arc::clone(&logs), None));

        let ready = match tokio::time::timeout(READY_TIMEOUT, ready_rx).await {
            Ok(Ok(value)) => value,
            Ok(Err(_)) => {
                let status = child.wait().await.ok();
                panic!(
                    "{name} exited before it was ready (status {status:?}); if dependencies are \
                     missing run scripts/setup-test-deps.sh. Output:\n{}",
                    tail(&logs)
                )
            }
            Err(_) => {
                let _ = child.start_kill();
                panic!(
                    "{name} did not print READY within {READY_TIMEOUT:?}; if dependencies are \
                     missing run scripts/setup-test-deps.sh. Output:\n{}",
                    tail(&logs)
                )
            }
        };
        Self {
            name,
            child,
            _stdin: stdin,
            ready,
            logs,
        }
    }

    /// The value of the READY line (the component's URL).
    pub fn ready_value(&self) -> &str {
        &self.ready
    }

    /// The most recent output lines (stdout and stderr interleaved).
    pub fn logs(&self) -> String {
        tail(&self.logs)
    }

    /// The process id, e.g. to pause the component with SIGSTOP.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process and waits until it is gone (its port is then free).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // kill_on_drop also does this; being explicit keeps the intent visible.
        let _ = self.child.start_kill();
    }
}

impl std::fmt::Debug for NodeProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeProcess")
            .field("name", &self.name)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

/// Reads lines until EOF (so the pipe never fills), keeps the last ones and
/// echoes them to stderr (captured by the test runner); hands the first
/// `READY <value>` line to `ready`.
async fn drain(
    name: &'static str,
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
        eprintln!("[{name}] {line}");
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
