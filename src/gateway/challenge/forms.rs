//! Rendering the auth challenge as the JSON-RPC answer to a request, in the richest form the client
//! understands (see [`ChallengeForm`]):
//!
//! - `InputRequired` (`2026-07-28` + URL elicitation) on `tools/call`, `resources/read` and
//!   `prompts/get`: `{"resultType":"input_required","inputRequests":{"authorize":
//!   {"method":"elicitation/create","params":{"mode":"url","url","message"}}}}`. The
//!   specification forbids `input_required` on other methods; those get the fallback error.
//! - `UrlElicitationError` (`2025-11-25` + URL elicitation): error `-32042` with
//!   `data.elicitations[0] = {mode:"url", elicitationId, url, message}` on any request.
//! - `Fallback`: a `tools/call` gets a tool result with `isError: true`, the link in its text and
//!   `structuredContent` = the [`AuthChallenge`]; any other request gets error
//!   [`AUTHORIZATION_REQUIRED`] (`-32001`, from the implementation-defined range) whose message
//!   contains the link and whose `data` is the [`AuthChallenge`].
//!
//! Every JSON-RPC answer is HTTP 200 (the challenge is an application-level answer, not a
//! transport failure); notifications and client responses get 202 with no body.

use super::client_profile::{ChallengeForm, ClientProfile};
use crate::flows::AuthChallenge;
use crate::gateway::jsonrpc::{
    AUTHORIZATION_REQUIRED, Envelope, URL_ELICITATION_REQUIRED, error_response, result_response,
    to_value,
};
use http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Key of the elicitation in `inputRequests`.
pub const INPUT_REQUEST_KEY: &str = "authorize";

/// Methods on which `2026-07-28` allows an `InputRequiredResult`.
const MRTR_METHODS: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

/// The HTTP status and JSON body the gateway answers with instead of forwarding the request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeReply {
    pub status: StatusCode,
    /// `None`: no body (202 Accepted for a notification).
    pub body: Option<Value>,
}

impl ChallengeReply {
    /// 202 Accepted without a body: what a notification or a client response gets.
    pub fn accepted() -> Self {
        Self {
            status: StatusCode::ACCEPTED,
            body: None,
        }
    }

    /// 200 with a JSON-RPC message.
    pub fn json(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(body),
        }
    }
}

/// The challenge as the answer to `env`. For a batch envelope, use [`render_batch`] with the
/// members instead; given the batch marker itself this answers a single fallback error.
pub fn render(env: &Envelope, profile: &ClientProfile, ch: &AuthChallenge) -> ChallengeReply {
    if env.is_notification || env.is_response {
        return ChallengeReply::accepted();
    }
    let id = env.id.as_ref();
    let method = env.method().unwrap_or_default();
    match profile.challenge_form() {
        ChallengeForm::InputRequired if MRTR_METHODS.contains(&method) => {
            ChallengeReply::json(result_response(id, input_required(ch)))
        }
        ChallengeForm::UrlElicitationError => ChallengeReply::json(error_response(
            id,
            URL_ELICITATION_REQUIRED,
            &format!("Authorization of {} is required.", ch.server_name),
            Some(json!({"elicitations": [url_elicitation(ch)]})),
        )),
        _ if method == "tools/call" => {
            ChallengeReply::json(result_response(id, tool_result(profile, ch)))
        }
        _ => ChallengeReply::json(error_response(
            id,
            AUTHORIZATION_REQUIRED,
            &format!(
                "Authorization is required to use {}: open {} in your browser, sign in, then \
                 retry.",
                ch.server_name, ch.auth_url
            ),
            Some(to_value(ch)),
        )),
    }
}

/// The challenge for every member of a batch: an array of the answers to its requests, or 202
/// without a body when it holds only notifications and responses.
pub fn render_batch(
    members: &[Envelope],
    profile: &ClientProfile,
    ch: &AuthChallenge,
) -> ChallengeReply {
    let answers: Vec<Value> = members
        .iter()
        .filter_map(|m| render(m, profile, ch).body)
        .collect();
    if answers.is_empty() {
        ChallengeReply::accepted()
    } else {
        ChallengeReply::json(Value::Array(answers))
    }
}

/// The fallback `tools/call` result: `isError`, the link in the text, the challenge as
/// `structuredContent`. Also what the synthetic `authenticate` tool returns.
pub fn tool_result(profile: &ClientProfile, ch: &AuthChallenge) -> Value {
    let mut result = json!({
        "content": [{"type": "text", "text": format!("{}\n\n{}", ch.message, ch.auth_url)}],
        "structuredContent": to_value(ch),
        "isError": true,
    });
    if profile.is_per_request()
        && let Some(obj) = result.as_object_mut()
    {
        obj.insert("resultType".to_owned(), json!("complete"));
    }
    result
}

/// `InputRequiredResult` with one URL-mode elicitation.
fn input_required(ch: &AuthChallenge) -> Value {
    json!({
        "resultType": "input_required",
        "inputRequests": {
            INPUT_REQUEST_KEY: {
                "method": "elicitation/create",
                "params": {"mode": "url", "url": ch.auth_url, "message": ch.message},
            }
        }
    })
}

/// A `2025-11-25` URL-mode elicitation.
fn url_elicitation(ch: &AuthChallenge) -> Value {
    json!({
        "mode": "url",
        "elicitationId": elicitation_id(&ch.auth_url),
        "url": ch.auth_url,
        "message": ch.message,
    })
}

/// Stable per flow (concurrent requests sharing a flow share the id) without repeating the flow
/// id itself: the first 128 bits of SHA-256 of the link, hex.
pub fn elicitation_id(auth_url: &str) -> String {
    let digest = Sha256::digest(auth_url.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::jsonrpc::parse_envelope;

    fn ch() -> AuthChallenge {
        AuthChallenge {
            status: "auth_required",
            auth_url: "https://gw.example.com/oauth/connect?flow=F1".to_owned(),
            server_name: "team-a/github".to_owned(),
            message: "Authorization is required to use team-a/github.".to_owned(),
        }
    }

    fn profile(version: Option<&str>, url: bool) -> ClientProfile {
        ClientProfile {
            protocol_version: version.map(str::to_owned),
            url_elicitation: url,
        }
    }

    fn request(method: &str, id: Value) -> Envelope {
        Envelope {
            id: Some(id),
            method: Some(method.to_owned()),
            ..Envelope::default()
        }
    }

    fn body(r: &ChallengeReply) -> &Value {
        assert_eq!(r.status, StatusCode::OK);
        r.body.as_ref().expect("a body")
    }

    #[test]
    fn mrtr_client_with_url_elicitation_gets_input_required_on_tools_call() {
        for method in MRTR_METHODS {
            let r = render(
                &request(method, json!(5)),
                &profile(Some("2026-07-28"), true),
                &ch(),
            );
            let b = body(&r);
            assert_eq!(b["id"], 5);
            assert!(b.get("error").is_none());
            let res = &b["result"];
            assert_eq!(res["resultType"], "input_required");
            let req = &res["inputRequests"][INPUT_REQUEST_KEY];
            assert_eq!(req["method"], "elicitation/create");
            assert_eq!(req["params"]["mode"], "url");
            assert_eq!(req["params"]["url"], ch().auth_url);
            assert_eq!(req["params"]["message"], ch().message);
        }
    }

    #[test]
    fn mrtr_client_gets_the_fallback_error_where_input_required_is_forbidden() {
        let r = render(
            &request("resources/list", json!("r")),
            &profile(Some("2026-07-28"), true),
            &ch(),
        );
        let b = body(&r);
        assert_eq!(b["id"], "r");
        assert_eq!(b["error"]["code"], AUTHORIZATION_REQUIRED);
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(&ch().auth_url)
        );
        assert_eq!(b["error"]["data"]["status"], "auth_required");
    }

    #[test]
    fn mrtr_client_without_url_elicitation_gets_a_tool_result_with_result_type() {
        let r = render(
            &request("tools/call", json!(1)),
            &profile(Some("2026-07-28"), false),
            &ch(),
        );
        let res = &body(&r)["result"];
        assert_eq!(res["resultType"], "complete");
        assert_eq!(res["isError"], true);
        assert_eq!(res["structuredContent"]["auth_url"], ch().auth_url);
    }

    #[test]
    fn url_elicitation_2025_11_25_gets_error_32042_on_any_request() {
        for method in ["tools/call", "tools/list", "resources/read", "prompts/list"] {
            let r = render(
                &request(method, json!(9)),
                &profile(Some("2025-11-25"), true),
                &ch(),
            );
            let b = body(&r);
            assert_eq!(b["id"], 9);
            assert_eq!(b["error"]["code"], -32042);
            let el = &b["error"]["data"]["elicitations"];
            assert_eq!(el.as_array().map(Vec::len), Some(1));
            assert_eq!(el[0]["mode"], "url");
            assert_eq!(el[0]["url"], ch().auth_url);
            assert_eq!(el[0]["message"], ch().message);
            let eid = el[0]["elicitationId"].as_str().expect("elicitationId");
            assert_eq!(eid.len(), 32);
            assert!(
                !ch().auth_url.contains(eid),
                "the id does not repeat the link"
            );
        }
    }

    #[test]
    fn elicitation_id_is_stable_per_flow_and_differs_between_flows() {
        assert_eq!(elicitation_id("a"), elicitation_id("a"));
        assert_ne!(elicitation_id("a"), elicitation_id("b"));
    }

    #[test]
    fn fallback_tools_call_is_an_error_tool_result_with_the_challenge() {
        for p in [
            profile(None, false),
            profile(Some("2025-06-18"), true),
            profile(Some("2025-11-25"), false),
            profile(Some("2025-03-26"), false),
        ] {
            let r = render(&request("tools/call", json!("x")), &p, &ch());
            let b = body(&r);
            assert_eq!(b["jsonrpc"], "2.0");
            assert_eq!(b["id"], "x");
            let res = &b["result"];
            assert_eq!(res["isError"], true);
            assert!(res.get("resultType").is_none());
            assert_eq!(res["content"][0]["type"], "text");
            let text = res["content"][0]["text"].as_str().expect("text");
            assert!(text.contains(&ch().auth_url), "{text}");
            assert_eq!(
                res["structuredContent"],
                json!({
                    "status": "auth_required",
                    "auth_url": ch().auth_url,
                    "server_name": "team-a/github",
                    "message": ch().message,
                })
            );
        }
    }

    #[test]
    fn fallback_other_methods_are_an_error_with_the_link() {
        let r = render(
            &request("resources/list", json!(3)),
            &profile(Some("2025-06-18"), false),
            &ch(),
        );
        let b = body(&r);
        assert_eq!(b["error"]["code"], AUTHORIZATION_REQUIRED);
        let msg = b["error"]["message"].as_str().expect("message");
        assert!(
            msg.contains(&ch().auth_url) && msg.contains("team-a/github"),
            "{msg}"
        );
        assert_eq!(b["error"]["data"]["auth_url"], ch().auth_url);
    }

    #[test]
    fn notifications_and_responses_get_202_without_body() {
        let n = parse_envelope(br#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#)
            .expect("parse");
        for p in [profile(Some("2026-07-28"), true), profile(None, false)] {
            assert_eq!(render(&n, &p, &ch()), ChallengeReply::accepted());
        }
        let resp = parse_envelope(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).expect("parse");
        assert_eq!(
            render(&resp, &profile(None, false), &ch()),
            ChallengeReply::accepted()
        );
    }

    #[test]
    fn batches_answer_each_request_and_skip_notifications() {
        let members = crate::gateway::jsonrpc::parse_batch(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}},
                {"jsonrpc":"2.0","method":"notifications/initialized"},
                {"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#,
        )
        .expect("batch");
        let r = render_batch(&members, &profile(Some("2025-03-26"), false), &ch());
        let b = body(&r).as_array().expect("array");
        assert_eq!(b.len(), 2);
        assert_eq!(b[0]["id"], 1);
        assert_eq!(b[0]["result"]["isError"], true);
        assert_eq!(b[1]["id"], 2);
        assert_eq!(b[1]["error"]["code"], AUTHORIZATION_REQUIRED);
        let only_notes = crate::gateway::jsonrpc::parse_batch(
            br#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        )
        .expect("batch");
        assert_eq!(
            render_batch(&only_notes, &profile(None, false), &ch()),
            ChallengeReply::accepted()
        );
    }

    #[test]
    fn a_hostile_link_or_name_stays_inside_json_strings() {
        let mut c = ch();
        c.server_name = "x\"}, {\"evil\":1".to_owned();
        c.auth_url = "https://gw/oauth/connect?flow=a\"b".to_owned();
        let r = render(&request("tools/call", json!(1)), &profile(None, false), &c);
        let b = body(&r);
        assert_eq!(
            b["result"]["structuredContent"]["server_name"],
            c.server_name
        );
        assert!(b.get("evil").is_none());
    }
}
