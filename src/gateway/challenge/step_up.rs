//! Step-up authorization: a remote server answering 403 `insufficient_scope` gets a new flow
//! asking for the union of the scopes the user already granted and those it challenged for — a
//! limited number of times per session and server, so a server that is never satisfied cannot
//! send the user round in circles.

use crate::oauth::{BearerChallenge, parse_bearer};
use crate::registry::ServerKey;
use std::time::Duration;

/// Step-ups allowed per (session, server) within [`WINDOW`].
pub const MAX_STEP_UPS: u32 = 3;
/// How long step-ups are counted.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// The Bearer challenge of a 403 `WWW-Authenticate` header when it is `insufficient_scope`.
pub fn insufficient_scope(www_authenticate: &str) -> Option<BearerChallenge> {
    parse_bearer(www_authenticate)
        .ok()
        .flatten()
        .filter(|c| c.error.as_deref() == Some("insufficient_scope"))
}

/// A `WWW-Authenticate` value for the new flow: the union of `current` and the challenged
/// scopes, and the challenge's `resource_metadata` hint.
pub fn step_up_header(challenge: &BearerChallenge, current: &[String]) -> String {
    let mut scopes: Vec<&str> = Vec::new();
    for s in current
        .iter()
        .map(String::as_str)
        .chain(challenge.scope.as_deref().unwrap_or("").split_whitespace())
    {
        // RFC 6749 scope tokens never contain quotes or backslashes; drop any that do.
        if !s.contains(['"', '\\']) && !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    let mut value = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{}\"",
        scopes.join(" ")
    );
    if let Some(rm) = &challenge.resource_metadata {
        let escaped = rm.replace('\\', "\\\\").replace('"', "\\\"");
        value.push_str(&format!(", resource_metadata=\"{escaped}\""));
    }
    value
}

/// Counts step-ups per (session, server).
#[derive(Debug)]
pub struct StepUps {
    counts: moka::sync::Cache<(String, ServerKey), u32>,
}

impl Default for StepUps {
    fn default() -> Self {
        Self {
            counts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(WINDOW)
                .build(),
        }
    }
}

impl StepUps {
    /// Count one more step-up; `false` when the limit is reached.
    pub fn allow(&self, session: &str, server: &ServerKey) -> bool {
        let key = (session.to_owned(), server.clone());
        let n = self.counts.get(&key).unwrap_or(0);
        if n >= MAX_STEP_UPS {
            return false;
        }
        self.counts.insert(key, n + 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_insufficient_scope_only() {
        let c = insufficient_scope(
            r#"Bearer error="insufficient_scope", scope="files:write", resource_metadata="https://rs/.well-known/oauth-protected-resource""#,
        )
        .expect("challenge");
        assert_eq!(c.scope.as_deref(), Some("files:write"));
        assert!(insufficient_scope(r#"Bearer error="invalid_token""#).is_none());
        assert!(insufficient_scope("Basic realm=\"x\"").is_none());
        assert!(insufficient_scope("garbage \"").is_none());
    }

    #[test]
    fn the_new_flow_asks_for_the_union_of_scopes() {
        let c = insufficient_scope(
            r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://rs/prm""#,
        )
        .expect("challenge");
        let header = step_up_header(&c, &["files:read".into(), "profile".into()]);
        let again = parse_bearer(&header).expect("parses").expect("bearer");
        assert_eq!(
            again.scope.as_deref(),
            Some("files:read profile files:write")
        );
        assert_eq!(again.resource_metadata.as_deref(), Some("https://rs/prm"));
        assert_eq!(again.error.as_deref(), Some("insufficient_scope"));
    }

    #[test]
    fn step_ups_are_limited_per_session_and_server() {
        let s = StepUps::default();
        let a = ServerKey::new("ns", "a");
        let b = ServerKey::new("ns", "b");
        for _ in 0..MAX_STEP_UPS {
            assert!(s.allow("sess", &a));
        }
        assert!(!s.allow("sess", &a));
        assert!(s.allow("sess", &b));
        assert!(s.allow("other", &a));
    }
}
