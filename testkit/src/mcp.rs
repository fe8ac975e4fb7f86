//! MCP servers the gateway talks to in tests.

use serde::Deserialize;

use super::node::NodeProcess;

/// Request counters of the protected MCP server (`GET /test/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct McpStats {
    /// Every request to `/mcp`, authorized or not.
    pub mcp_requests: u64,
    /// Requests that carried a valid token.
    pub authorized_requests: u64,
}

/// `tests/infra/node/mcp-server.mjs`: the official TS SDK, stateless Streamable
/// HTTP, requiring IdP-issued JWTs whose `aud` is its own `/mcp` URL.
#[derive(Debug)]
pub struct McpServer {
    process: NodeProcess,
    url: String,
}

impl McpServer {
    /// Starts a server protected by `issuer` requiring scope `mcp:tools`.
    pub async fn start(issuer: &str) -> Self {
        Self::start_with_scopes(issuer, "mcp:tools").await
    }

    /// Starts a server requiring the space-separated `required_scopes` ("" for none).
    pub async fn start_with_scopes(issuer: &str, required_scopes: &str) -> Self {
        let env = [
            ("PORT", "0".to_owned()),
            ("ISSUER", issuer.to_owned()),
            ("REQUIRED_SCOPES", required_scopes.to_owned()),
        ];
        let process = NodeProcess::start("mcp-server", &["mcp-server.mjs"], &env).await;
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

    /// Request counters.
    pub async fn stats(&self) -> McpStats {
        let origin = self.url.trim_end_matches("/mcp");
        reqwest::get(format!("{origin}/test/stats"))
            .await
            .expect("GET /test/stats")
            .json()
            .await
            .expect("stats shape")
    }

    /// From now on, refuse (401) every token accepted so far, as after a revocation.
    pub async fn revoke_tokens(&self) {
        let origin = self.url.trim_end_matches("/mcp");
        let status = reqwest::Client::new()
            .post(format!("{origin}/test/revoke-tokens"))
            .send()
            .await
            .expect("POST /test/revoke-tokens")
            .status();
        assert!(
            status.is_success(),
            "POST /test/revoke-tokens answered {status}"
        );
    }

    /// The node process (logs, pid).
    pub fn process(&self) -> &NodeProcess {
        &self.process
    }
}

/// `@modelcontextprotocol/server-everything streamableHttp`, no auth, stateful
/// sessions (`mcp-session-id`), forced onto 127.0.0.1 by `loopback.cjs`.
#[derive(Debug)]
pub struct EverythingServer {
    process: NodeProcess,
    url: String,
}

impl EverythingServer {
    /// Starts the server on a free port.
    pub async fn start() -> Self {
        let env = [("PORT", "0".to_owned()), ("LOOPBACK_READY", "1".to_owned())];
        let args = [
            "-r",
            "./loopback.cjs",
            "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
            "streamableHttp",
        ];
        let process = NodeProcess::start("server-everything", &args, &env).await;
        let url = format!("{}/mcp", process.ready_value());
        Self { process, url }
    }

    /// The MCP endpoint, `http://127.0.0.1:<port>/mcp`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The node process (logs, pid).
    pub fn process(&self) -> &NodeProcess {
        &self.process
    }
}
