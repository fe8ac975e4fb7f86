//! A real MCP client for end-to-end tests: `tests/infra/node/mcp-client.mjs` (the official
//! TypeScript SDK `Client` + `StreamableHTTPClientTransport`), run once per call of
//! [`McpClient::run`] with a sequence of commands; each step comes back as one JSON line.
//!
//! The SDK (1.32) speaks up to `2025-11-25`. For `2026-07-28` (no `initialize`, `_meta` on every
//! request) tests send raw JSON-RPC with reqwest instead: see [`post_jsonrpc`].

use serde::Deserialize;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

use super::node::infra_dir;

/// How long one driver run may take (connect plus all commands).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// One command for the driver.
#[derive(Debug, Clone)]
pub enum ClientCommand {
    ListTools,
    Ping,
    Call { name: String, args: Value },
}

impl ClientCommand {
    pub fn call(name: &str, args: Value) -> Self {
        ClientCommand::Call {
            name: name.to_owned(),
            args,
        }
    }

    fn push_args(&self, argv: &mut Vec<String>) {
        match self {
            ClientCommand::ListTools => argv.push("list-tools".to_owned()),
            ClientCommand::Ping => argv.push("ping".to_owned()),
            ClientCommand::Call { name, args } => {
                argv.push("call".to_owned());
                argv.push(name.clone());
                argv.push(args.to_string());
            }
        }
    }
}

/// A JSON-RPC error as the SDK surfaced it (`McpError`: code, message, data).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClientError {
    pub code: Option<i64>,
    pub message: String,
    #[serde(default)]
    pub data: Value,
}

/// One output line of the driver.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientLine {
    /// `connect`, `list-tools`, `call`, `ping`, `elicitation` or `args`.
    pub op: String,
    #[serde(default)]
    pub ok: Option<bool>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<ClientError>,
    /// `connect`: the negotiated version.
    #[serde(default, rename = "protocolVersion")]
    pub protocol_version: Option<String>,
    #[serde(default, rename = "serverInfo")]
    pub server_info: Option<Value>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default, rename = "sessionId")]
    pub session_id: Option<String>,
    /// `elicitation`: the request's params.
    #[serde(default)]
    pub params: Option<Value>,
}

impl ClientLine {
    /// The result of a successful step; panics with the line otherwise.
    pub fn expect_ok(&self) -> &Value {
        match (&self.ok, &self.result) {
            (Some(true), Some(v)) => v,
            _ => panic!("step {} failed: {self:?}", self.op),
        }
    }

    /// The error of a failed step; panics with the line otherwise.
    pub fn expect_err(&self) -> &ClientError {
        match (&self.ok, &self.error) {
            (Some(false), Some(e)) => e,
            _ => panic!("step {} did not fail: {self:?}", self.op),
        }
    }
}

/// Everything one run printed, in order.
#[derive(Debug, Clone)]
pub struct ClientRun {
    pub lines: Vec<ClientLine>,
    pub stderr: String,
}

impl ClientRun {
    /// The `connect` line.
    pub fn connect(&self) -> &ClientLine {
        self.lines
            .iter()
            .find(|l| l.op == "connect")
            .unwrap_or_else(|| panic!("no connect line: {self:?}"))
    }

    /// The lines of the commands (not `connect`, not `elicitation`), in order.
    pub fn steps(&self) -> Vec<&ClientLine> {
        self.lines
            .iter()
            .filter(|l| l.op != "connect" && l.op != "elicitation")
            .collect()
    }

    /// The `n`th command's line.
    pub fn step(&self, n: usize) -> &ClientLine {
        let steps = self.steps();
        steps
            .get(n)
            .copied()
            .unwrap_or_else(|| panic!("no step {n}: {self:?}"))
    }
}

/// Settings of the SDK client.
#[derive(Debug, Clone, Default)]
pub struct McpClient {
    url: String,
    bearer: Option<String>,
    url_elicitation: bool,
    protocol_version: Option<String>,
}

impl McpClient {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::default()
        }
    }

    /// Send `Authorization: Bearer <token>` (the caller's token for the gateway).
    pub fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    /// Declare `capabilities.elicitation = { url: {} }`.
    pub fn url_elicitation(mut self, on: bool) -> Self {
        self.url_elicitation = on;
        self
    }

    /// Ask for this version in `initialize` instead of the SDK's latest (`2025-11-25`).
    pub fn protocol_version(mut self, version: &str) -> Self {
        self.protocol_version = Some(version.to_owned());
        self
    }

    /// Connects, runs `commands` in order, disconnects.
    pub async fn run(&self, commands: &[ClientCommand]) -> ClientRun {
        let mut argv = vec!["mcp-client.mjs".to_owned()];
        for c in commands {
            c.push_args(&mut argv);
        }
        let mut cmd = Command::new("node");
        cmd.args(&argv)
            .current_dir(infra_dir())
            .env("MCP_URL", &self.url)
            .env_remove("MCP_BEARER")
            .env_remove("MCP_PROTOCOL_VERSION")
            .env(
                "MCP_URL_ELICITATION",
                if self.url_elicitation { "1" } else { "0" },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(b) = &self.bearer {
            cmd.env("MCP_BEARER", b);
        }
        if let Some(v) = &self.protocol_version {
            cmd.env("MCP_PROTOCOL_VERSION", v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run `node` ({e}); run scripts/setup-test-deps.sh first")
        });
        let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("mcp-client.mjs did not finish within {RUN_TIMEOUT:?}"))
            .expect("mcp-client.mjs output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("bad driver line {l:?}: {e}; stderr:\n{stderr}"))
            })
            .collect();
        ClientRun { lines, stderr }
    }

    pub async fn list_tools(&self) -> ClientRun {
        self.run(&[ClientCommand::ListTools]).await
    }

    pub async fn call_tool(&self, name: &str, args: Value) -> ClientRun {
        self.run(&[ClientCommand::call(name, args)]).await
    }
}

/// A raw JSON-RPC POST (for `2026-07-28`, which the SDK cannot speak). Sends the MCP headers the
/// transport requires; returns the HTTP status and the JSON message (from a JSON body or the
/// first SSE `data:` event), `None` when the body is empty.
pub async fn post_jsonrpc(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (reqwest::StatusCode, Option<Value>) {
    let mut req = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body.to_string()).send().await.expect("POST");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    if text.trim().is_empty() {
        return (status, None);
    }
    let json_text = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .unwrap_or(text.trim());
    let value = serde_json::from_str(json_text)
        .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
    (status, Some(value))
}

/// A `2026-07-28` request: `_meta` with the protocol version and client capabilities (URL
/// elicitation when `url_elicitation`), plus `params`.
pub fn request_2026(id: Value, method: &str, params: Value, url_elicitation: bool) -> Value {
    let caps = if url_elicitation {
        serde_json::json!({"elicitation": {"url": {}}})
    } else {
        serde_json::json!({})
    };
    let mut params = if params.is_object() {
        params
    } else {
        serde_json::json!({})
    };
    params["_meta"] = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test-client", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": caps,
    });
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}
