//! What the gateway answers by itself while the user has no token for a server, so that every
//! client can connect, see why nothing works, and start the flow.
//!
//! - `initialize` succeeds (a client that cannot connect cannot show a link), negotiating a
//!   version we know, with instructions to call `authenticate`.
//! - `tools/list` offers exactly one tool, `authenticate`, for every client. Clients with URL
//!   elicitation get the same list: `2026-07-28` forbids `input_required` on `tools/list`, and a
//!   failing list makes many clients mark the whole server broken.
//! - `tools/call` of `authenticate` returns the challenge in the client's richest form (for the
//!   fallback form: the `isError` tool result with the link).
//! - `ping`, `server/discover`, notifications and client responses are answered directly.
//! - Anything else is `None`: the handler renders the challenge for it.

use super::client_profile::{ClientProfile, INITIALIZE_VERSIONS, MRTR_VERSION};
use super::forms::{ChallengeReply, render};
use crate::flows::AuthChallenge;
use crate::gateway::jsonrpc::{Envelope, result_response};
use serde_json::{Value, json};

/// Name of the synthetic tool.
pub const AUTHENTICATE_TOOL: &str = "authenticate";

/// Our name in `serverInfo`.
const GATEWAY_NAME: &str = "mcp-oauth-operator";

/// The gateway's own answer to `env` while the user has no token for `server_name`, or `None`
/// when the handler should render the challenge instead.
pub fn answer_unauthorized(
    env: &Envelope,
    profile: &ClientProfile,
    ch: &AuthChallenge,
    server_name: &str,
) -> Option<ChallengeReply> {
    if env.is_batch {
        return None;
    }
    if env.is_notification || env.is_response {
        return Some(ChallengeReply::accepted());
    }
    let id = env.id.as_ref();
    let reply = |result: Value| Some(ChallengeReply::json(result_response(id, result)));
    match env.method()? {
        "initialize" => reply(initialize_result(env, server_name)),
        "ping" => reply(complete(profile, json!({}))),
        "tools/list" => reply(complete(profile, tools_list(profile, server_name))),
        "tools/call" if env.tool_name.as_deref() == Some(AUTHENTICATE_TOOL) => {
            Some(render(env, profile, ch))
        }
        "server/discover" => reply(discover_result(server_name)),
        _ => None,
    }
}

/// The answer to a call of `authenticate` when the user already has a token (the remote server
/// does not know the tool): a plain success telling the model to go ahead.
pub fn already_authorized(
    env: &Envelope,
    profile: &ClientProfile,
    server_name: &str,
) -> ChallengeReply {
    let text = format!(
        "You are already authorized for {server_name}. List the tools again and call them \
         directly."
    );
    ChallengeReply::json(result_response(
        env.id.as_ref(),
        complete(
            profile,
            json!({
                "content": [{"type": "text", "text": text}],
                "structuredContent": {"status": "authorized", "server_name": server_name},
                "isError": false,
            }),
        ),
    ))
}

/// The client's version when we know it, else the newest we know.
pub fn negotiate_version(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| INITIALIZE_VERSIONS.iter().find(|v| **v == r))
        .copied()
        .unwrap_or(INITIALIZE_VERSIONS[0])
}

fn initialize_result(env: &Envelope, server_name: &str) -> Value {
    json!({
        "protocolVersion": negotiate_version(env.protocol_version.as_deref()),
        "capabilities": {"tools": {"listChanged": true}},
        "serverInfo": server_info(server_name),
        "instructions": instructions(server_name),
    })
}

fn discover_result(server_name: &str) -> Value {
    let mut versions = vec![MRTR_VERSION];
    versions.extend(INITIALIZE_VERSIONS);
    json!({
        "resultType": "complete",
        "supportedVersions": versions,
        "capabilities": {"tools": {"listChanged": true}},
        "instructions": instructions(server_name),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {"io.modelcontextprotocol/serverInfo": server_info(server_name)},
    })
}

fn tools_list(profile: &ClientProfile, server_name: &str) -> Value {
    let mut list = json!({
        "tools": [{
            "name": AUTHENTICATE_TOOL,
            "title": format!("Authorize {server_name}"),
            "description": format!(
                "Sign in to {server_name}. Its tools are hidden until you authorize this gateway \
                 to use it on your behalf. Call this tool to get a sign-in link, open the link in \
                 a browser, complete the sign-in, then list the tools again."
            ),
            "inputSchema": {"type": "object", "properties": {}},
            "annotations": {"readOnlyHint": true, "openWorldHint": false},
        }]
    });
    // The list changes once the user has signed in: never let a 2026-07-28 client cache it.
    if profile.is_per_request()
        && let Some(obj) = list.as_object_mut()
    {
        obj.insert("ttlMs".to_owned(), json!(0));
        obj.insert("cacheScope".to_owned(), json!("private"));
    }
    list
}

/// Adds `resultType: "complete"`, which `2026-07-28` results must carry.
fn complete(profile: &ClientProfile, mut result: Value) -> Value {
    if profile.is_per_request()
        && let Some(obj) = result.as_object_mut()
    {
        obj.insert("resultType".to_owned(), json!("complete"));
    }
    result
}

fn server_info(server_name: &str) -> Value {
    json!({
        "name": format!("{GATEWAY_NAME}/{server_name}"),
        "title": format!("{server_name} via {GATEWAY_NAME} (authorization required)"),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn instructions(server_name: &str) -> String {
    format!(
        "{server_name} is reached through {GATEWAY_NAME}, and you have not authorized it yet. Call \
         the `{AUTHENTICATE_TOOL}` tool: it returns a link to open in a browser to sign in. \
         Afterwards, list the tools again to see the tools of {server_name}."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::challenge::client_profile::ClientProfile;
    use crate::gateway::jsonrpc::{AUTHORIZATION_REQUIRED, parse_envelope};
    use http::StatusCode;

    const SERVER: &str = "team-a/github";

    fn ch() -> AuthChallenge {
        AuthChallenge {
            status: "auth_required",
            auth_url: "http://127.0.0.1:1/oauth/connect?flow=abc".to_owned(),
            server_name: SERVER.to_owned(),
            message: "Authorization is required.".to_owned(),
        }
    }

    fn answer(body: &str, profile: &ClientProfile) -> Option<ChallengeReply> {
        let env = parse_envelope(body.as_bytes()).expect("parse");
        answer_unauthorized(&env, profile, &ch(), SERVER)
    }

    fn result(body: &str, profile: &ClientProfile) -> Value {
        let r = answer(body, profile).expect("answered");
        assert_eq!(r.status, StatusCode::OK);
        let b = r.body.expect("body");
        assert!(b.get("error").is_none(), "{b}");
        b["result"].clone()
    }

    fn p(version: Option<&str>, url: bool) -> ClientProfile {
        ClientProfile {
            protocol_version: version.map(str::to_owned),
            url_elicitation: url,
        }
    }

    fn init(version: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{{}},"clientInfo":{{"name":"c","version":"1"}}}}}}"#
        )
    }

    #[test]
    fn initialize_echoes_known_versions_and_offers_tools() {
        for v in ["2025-03-26", "2025-06-18", "2025-11-25"] {
            let r = result(&init(v), &p(Some(v), false));
            assert_eq!(r["protocolVersion"], v);
            assert_eq!(r["capabilities"], json!({"tools": {"listChanged": true}}));
            let name = r["serverInfo"]["name"].as_str().expect("name");
            assert!(
                name.contains(GATEWAY_NAME) && name.contains(SERVER),
                "{name}"
            );
            assert!(r["serverInfo"]["version"].is_string());
            let instr = r["instructions"].as_str().expect("instructions");
            assert!(instr.contains("`authenticate`"), "{instr}");
            assert!(r.get("resultType").is_none());
        }
    }

    #[test]
    fn initialize_with_an_unknown_version_gets_the_latest_we_know() {
        for v in ["2024-11-05", "2099-01-01", "garbage"] {
            let r = result(&init(v), &p(Some(v), false));
            assert_eq!(r["protocolVersion"], "2025-11-25", "{v}");
        }
        let r = result(
            r#"{"jsonrpc":"2.0","id":"i","method":"initialize"}"#,
            &p(None, false),
        );
        assert_eq!(r["protocolVersion"], "2025-11-25");
        assert_eq!(negotiate_version(None), "2025-11-25");
    }

    #[test]
    fn initialize_keeps_the_request_id() {
        let r = answer(&init("2025-06-18"), &p(None, false)).expect("answered");
        assert_eq!(r.body.expect("body")["id"], 0);
    }

    #[test]
    fn notifications_get_202() {
        for body in [
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
            r#"{"jsonrpc":"2.0","id":5,"result":{"action":"accept"}}"#,
        ] {
            let r = answer(body, &p(None, false)).expect("answered");
            assert_eq!(r, ChallengeReply::accepted(), "{body}");
        }
    }

    #[test]
    fn tools_list_is_exactly_authenticate_for_every_profile() {
        for prof in [
            p(None, false),
            p(Some("2025-06-18"), false),
            p(Some("2025-11-25"), true),
            p(Some("2026-07-28"), true),
            p(Some("2026-07-28"), false),
        ] {
            let r = result(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#, &prof);
            let tools = r["tools"].as_array().expect("tools");
            assert_eq!(tools.len(), 1);
            assert_eq!(tools[0]["name"], AUTHENTICATE_TOOL);
            assert_eq!(
                tools[0]["inputSchema"],
                json!({"type": "object", "properties": {}})
            );
            let d = tools[0]["description"].as_str().expect("description");
            assert!(d.contains(SERVER) && d.contains("link"), "{d}");
            if prof.is_per_request() {
                assert_eq!(r["resultType"], "complete");
                assert_eq!(r["ttlMs"], 0);
                assert_eq!(r["cacheScope"], "private");
            } else {
                assert!(r.get("resultType").is_none());
                assert!(r.get("ttlMs").is_none());
            }
        }
    }

    const CALL_AUTH: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"authenticate","arguments":{}}}"#;

    #[test]
    fn calling_authenticate_returns_the_fallback_challenge() {
        let r = result(CALL_AUTH, &p(Some("2025-06-18"), false));
        assert_eq!(r["isError"], true);
        assert_eq!(
            r["structuredContent"],
            serde_json::to_value(ch()).expect("json")
        );
        let text = r["content"][0]["text"].as_str().expect("text");
        assert!(text.contains(&ch().auth_url));
    }

    #[test]
    fn calling_authenticate_uses_the_richest_form() {
        let r = answer(CALL_AUTH, &p(Some("2025-11-25"), true)).expect("answered");
        assert_eq!(r.body.expect("body")["error"]["code"], -32042);
        let r = result(CALL_AUTH, &p(Some("2026-07-28"), true));
        assert_eq!(r["resultType"], "input_required");
    }

    #[test]
    fn other_calls_and_methods_are_left_to_the_handler() {
        for body in [
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"whoami"}}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"resources/list"}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"authenticate"}}"#,
            r#"[{"jsonrpc":"2.0","id":4,"method":"ping"}]"#,
        ] {
            assert_eq!(answer(body, &p(Some("2025-06-18"), false)), None, "{body}");
        }
    }

    #[test]
    fn ping_and_discover() {
        let r = result(
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            &p(None, false),
        );
        assert_eq!(r, json!({}));
        let r = result(
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            &p(Some("2026-07-28"), false),
        );
        assert_eq!(r, json!({"resultType": "complete"}));
        let r = result(
            r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
            &p(Some("2026-07-28"), false),
        );
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["supportedVersions"][0], "2026-07-28");
        assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
    }

    #[test]
    fn already_authorized_is_a_success() {
        let env = parse_envelope(CALL_AUTH.as_bytes()).expect("parse");
        let r = already_authorized(&env, &p(None, false), SERVER);
        let b = r.body.expect("body");
        assert_eq!(b["id"], 3);
        assert_eq!(b["result"]["isError"], false);
        assert!(
            b["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .contains(SERVER)
        );
    }

    #[test]
    fn the_fallback_error_code_is_ours() {
        // Documented in jsonrpc.rs: implementation-defined range, never assigned by MCP.
        assert!((-32019..=-32000).contains(&AUTHORIZATION_REQUIRED));
    }
}
