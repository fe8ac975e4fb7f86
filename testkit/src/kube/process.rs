//! Server processes under a small `sh` wrapper that stops them when the test process ends,
//! with their output in a log file quoted in failure messages.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};

/// Lines of a server log quoted in failure messages.
const LOG_TAIL_LINES: usize = 60;

/// Runs `"$@"` until our end of stdin closes, then sends it the signal named by what was
/// written to stdin (TERM when nothing was: the test process died) and waits; exits as soon as
/// the server exits by itself too, so an early death is visible via `try_wait`. The server's
/// stdin is /dev/null; the watcher reads the pipe through fd 3 because a background job's
/// stdin would otherwise be /dev/null as well.
const WRAPPER: &str = r#"exec 3<&0
"$@" </dev/null & pid=$!
{ sig=$(cat <&3); kill -s "${sig:-TERM}" "$pid" 2>/dev/null; } &
wait "$pid""#;

/// A server process under the [`WRAPPER`], logging stdout and stderr to one file.
pub(super) struct Supervised {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Supervised {
    pub(super) fn spawn(name: &'static str, program: &Path, args: &[String], log: PathBuf) -> Self {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|err| panic!("open {}: {err}", log.display()));
        let err = out.try_clone().expect("clone log file handle");
        let mut child = std::process::Command::new("sh")
            .args(["-c", WRAPPER, "sh"])
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|err| panic!("spawn sh for {name}: {err}"));
        let stdin = child.stdin.take();
        Self {
            name,
            child,
            stdin,
            log,
        }
    }

    /// The exit status if the server has exited by itself.
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the server gracefully (SIGTERM; the apiserver takes about a second) and waits
    /// until it is gone.
    pub(super) fn stop(&mut self) {
        self.signal("TERM");
    }

    /// Kills the server (SIGKILL: instant, for cleanup) and waits until it is gone.
    pub(super) fn kill(&mut self) {
        self.signal("KILL");
    }

    /// Tells the wrapper which signal to send, closes the pipe and waits for the wrapper.
    fn signal(&mut self, name: &str) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(name.as_bytes());
        }
        let _ = self.child.wait();
    }

    /// Why it did not become ready: `what` happened, plus its log.
    pub(super) fn failure(&mut self, what: String) -> StartFailure {
        StartFailure {
            port_taken: self.exited().is_some() && self.port_taken(),
            message: format!(
                "{} {what}; log ({}):\n{}",
                self.name,
                self.log.display(),
                log_tail(&self.log)
            ),
        }
    }

    /// Whether the log says the server could not bind its port (someone took it first).
    fn port_taken(&self) -> bool {
        std::fs::read_to_string(&self.log)
            .map(|log| log.contains("address already in use"))
            .unwrap_or(false)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why a server did not become ready.
pub(super) struct StartFailure {
    /// It exited because its port was taken: worth another attempt on other ports.
    pub(super) port_taken: bool,
    /// What happened, with the end of its log.
    pub(super) message: String,
}

/// The last lines of the log file at `path` (empty when there is none).
pub(super) fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
