//! `tests/infra/python/mcp_server.py`: an OAuth-protected MCP server built with the official
//! MCP Python SDK, run with the project venv that `scripts/setup-test-deps.sh` creates
//! (`$MCPOAUTH_VENV`, default `~/.cache/mcp-oauth-operator/venv`). Same interface as
//! [`super::McpServer`]: stateless Streamable HTTP, IdP-issued JWTs whose `aud` is its own
//! `/mcp` URL, tools `whoami` and `echo`.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::process::Command;

use super::node::NodeProcess;

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
    crate::repo_root().join("tests/infra/python")
}

/// A running Python SDK server; killed on drop (and it exits by itself when our end of its
/// stdin closes, should the test process die without dropping it).
pub struct PythonMcpServer {
    process: NodeProcess,
    url: String,
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
        let process = NodeProcess::spawn("python-mcp", command).await;
        let url = process.ready_value().to_owned();
        Self { process, url }
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
        self.process.logs()
    }

    /// Kills the process and waits until it is gone.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}

impl std::fmt::Debug for PythonMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonMcpServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}
