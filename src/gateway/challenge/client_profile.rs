//! What a client understands — its protocol version and whether it declared URL-mode elicitation —
//! and from that, which form of the auth challenge it gets.
//!
//! Clients of `2025-*` revisions say this once, in `initialize`; later requests carry only the
//! `MCP-Protocol-Version` header. So the gateway remembers the profile per (session, server, MCP
//! session) in a bounded in-memory cache. `2026-07-28` requests carry both in `_meta` and the
//! specification forbids inferring capabilities from earlier requests, so for them the message
//! alone decides.

use crate::gateway::jsonrpc::Envelope;
use crate::registry::ServerKey;
use std::time::Duration;

/// `2026-07-28`: no `initialize`, per-request `_meta`, Multi Round-Trip Requests.
pub const MRTR_VERSION: &str = "2026-07-28";
/// `2025-11-25`: the first revision with URL-mode elicitation and error `-32042`.
pub const URL_ELICITATION_VERSION: &str = "2025-11-25";
/// Versions we answer `initialize` with, newest first.
pub const INITIALIZE_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// How a client is told that the user must authorize a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeForm {
    /// `2026-07-28` with URL elicitation: `InputRequiredResult` with a URL-mode elicitation
    /// (only on `tools/call`, `resources/read`, `prompts/get`).
    InputRequired,
    /// `2025-11-25` (up to `2026-07-28`) with URL elicitation: JSON-RPC error `-32042`.
    UrlElicitationError,
    /// Anything else: a tool result / error carrying the link.
    Fallback,
}

/// Longest protocol version string remembered (revisions are `YYYY-MM-DD`; drafts a bit longer).
const MAX_VERSION_LEN: usize = 64;

/// What one client understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]

pub struct ClientProfile {
    pub protocol_version: Option<String>,
    pub url_elicitation: bool,
}

impl ClientProfile {
    /// Combines what this message says with the `MCP-Protocol-Version` header and the profile
    /// remembered from the session's `initialize`. The message wins, then the header (it carries
    /// the version actually negotiated), then memory. Capabilities come from the message, else —
    /// only for pre-`2026-07-28` clients — from memory.
    pub fn resolve(
        env: &Envelope,
        header_protocol_version: Option<&str>,
        remembered: Option<&ClientProfile>,
    ) -> ClientProfile {
        // Profiles are remembered per session, so a version string is kept only when it is of a
        // sane length: a megabyte-long `protocolVersion` in each of many unauthenticated
        // `initialize` requests would otherwise be held for a day. (No revision is that long;
        // a dropped one is treated as unknown, which gets the fallback form anyway.)
        let sane = |v: &&str| v.len() <= MAX_VERSION_LEN;
        let protocol_version = env
            .protocol_version
            .as_deref()
            .filter(sane)
            .or_else(|| header_protocol_version.filter(sane))
            .map(str::to_owned)
            .or_else(|| remembered.and_then(|p| p.protocol_version.clone()));
        let per_request = protocol_version
            .as_deref()
            .is_some_and(|v| version_at_least(v, MRTR_VERSION));
        let url_elicitation = match env.url_elicitation {
            Some(declared) => declared,
            None if per_request => false,
            None => remembered.is_some_and(|p| p.url_elicitation),
        };
        ClientProfile {
            protocol_version,
            url_elicitation,
        }
    }

    /// The richest challenge form this client understands.
    pub fn challenge_form(&self) -> ChallengeForm {
        let Some(version) = self.protocol_version.as_deref() else {
            return ChallengeForm::Fallback;
        };
        if !self.url_elicitation {
            ChallengeForm::Fallback
        } else if version_at_least(version, MRTR_VERSION) {
            ChallengeForm::InputRequired
        } else if version_at_least(version, URL_ELICITATION_VERSION) {
            ChallengeForm::UrlElicitationError
        } else {
            ChallengeForm::Fallback
        }
    }

    /// True for `2026-07-28` and later, whose results must carry `resultType`.
    pub fn is_per_request(&self) -> bool {
        self.protocol_version
            .as_deref()
            .is_some_and(|v| version_at_least(v, MRTR_VERSION))
    }
}

/// `version >= floor` for `YYYY-MM-DD` revisions; anything else (drafts, garbage) is never
/// "at least" a revision, so unknown clients get the fallback form.
pub fn version_at_least(version: &str, floor: &str) -> bool {
    is_revision(version) && version >= floor
}

fn is_revision(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Where a profile is remembered: the caller's session, the server, and the MCP session id
/// (`Mcp-Session-Id`) when the transport has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileKey {
    pub session: String,
    pub server: ServerKey,
    pub mcp_session: Option<String>,
}

/// Bounded, expiring memory of client profiles. Losing an entry only downgrades a client to the
/// fallback form until it initializes again, so an in-memory cache per replica is enough.
#[derive(Clone)]
pub struct ClientProfiles {
    cache: moka::sync::Cache<ProfileKey, ClientProfile>,
}

impl ClientProfiles {
    /// Default capacity (entries) and idle expiry.
    pub const DEFAULT_CAPACITY: u64 = 100_000;
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(24 * 3600);

    pub fn new(capacity: u64, idle: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(idle)
                .build(),
        }
    }

    pub fn remember(&self, key: ProfileKey, profile: ClientProfile) {
        self.cache.insert(key, profile);
    }

    pub fn get(&self, key: &ProfileKey) -> Option<ClientProfile> {
        self.cache.get(key)
    }

    /// Drops a profile (e.g. when the MCP session is deleted).
    pub fn forget(&self, key: &ProfileKey) {
        self.cache.invalidate(key);
    }
}

impl Default for ClientProfiles {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY, Self::DEFAULT_IDLE)
    }
}

impl std::fmt::Debug for ClientProfiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProfiles")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::jsonrpc::parse_envelope;

    fn profile(version: Option<&str>, url: bool) -> ClientProfile {
        ClientProfile {
            protocol_version: version.map(str::to_owned),
            url_elicitation: url,
        }
    }

    fn env(version: Option<&str>, url: Option<bool>) -> Envelope {
        Envelope {
            id: Some(serde_json::json!(1)),
            method: Some("tools/call".to_owned()),
            protocol_version: version.map(str::to_owned),
            url_elicitation: url,
            ..Envelope::default()
        }
    }

    #[test]
    fn an_oversized_version_is_not_remembered() {
        let huge = "2025-11-25".repeat(100_000);
        let p = ClientProfile::resolve(&env(Some(&huge), Some(true)), Some(&huge), None);
        assert_eq!(p.protocol_version, None);
        let p = ClientProfile::resolve(&env(Some(&huge), None), Some("2025-11-25"), None);
        assert_eq!(p.protocol_version.as_deref(), Some("2025-11-25"));
    }

    #[test]
    fn forms_per_version_and_capability() {
        let cases = [
            (Some("2026-07-28"), true, ChallengeForm::InputRequired),
            (Some("2027-01-01"), true, ChallengeForm::InputRequired),
            (Some("2026-07-28"), false, ChallengeForm::Fallback),
            (Some("2025-11-25"), true, ChallengeForm::UrlElicitationError),
            (Some("2026-01-15"), true, ChallengeForm::UrlElicitationError),
            (Some("2025-11-25"), false, ChallengeForm::Fallback),
            (Some("2025-06-18"), true, ChallengeForm::Fallback),
            (Some("2025-03-26"), false, ChallengeForm::Fallback),
            (Some("DRAFT-2026-v1"), true, ChallengeForm::Fallback),
            (Some("2026-7-28"), true, ChallengeForm::Fallback),
            (Some(""), true, ChallengeForm::Fallback),
            (None, true, ChallengeForm::Fallback),
            (None, false, ChallengeForm::Fallback),
        ];
        for (v, url, form) in cases {
            assert_eq!(profile(v, url).challenge_form(), form, "{v:?} url={url}");
        }
    }

    #[test]
    fn message_wins_over_header_and_memory() {
        let mem = profile(Some("2025-06-18"), false);
        let p = ClientProfile::resolve(
            &env(Some("2026-07-28"), Some(true)),
            Some("2025-11-25"),
            Some(&mem),
        );
        assert_eq!(p, profile(Some("2026-07-28"), true));
    }

    #[test]
    fn header_wins_over_memory_for_the_version_and_memory_supplies_capabilities() {
        let mem = profile(Some("2025-11-25"), true);
        let p = ClientProfile::resolve(&env(None, None), Some("2025-06-18"), Some(&mem));
        assert_eq!(p, profile(Some("2025-06-18"), true));
        let p = ClientProfile::resolve(&env(None, None), None, Some(&mem));
        assert_eq!(p, mem);
        assert_eq!(p.challenge_form(), ChallengeForm::UrlElicitationError);
    }

    #[test]
    fn per_request_clients_never_inherit_capabilities() {
        let mem = profile(Some("2026-07-28"), true);
        let p = ClientProfile::resolve(&env(Some("2026-07-28"), None), None, Some(&mem));
        assert!(!p.url_elicitation);
        assert_eq!(p.challenge_form(), ChallengeForm::Fallback);
        // Same when only the header says 2026-07-28.
        let p = ClientProfile::resolve(&env(None, None), Some("2026-07-28"), Some(&mem));
        assert!(!p.url_elicitation);
    }

    #[test]
    fn nothing_known_is_the_fallback() {
        let p = ClientProfile::resolve(&env(None, None), None, None);
        assert_eq!(p, ClientProfile::default());
        assert_eq!(p.challenge_form(), ChallengeForm::Fallback);
        assert!(!p.is_per_request());
    }

    #[test]
    fn explicit_false_overrides_memory() {
        let mem = profile(Some("2025-11-25"), true);
        let p = ClientProfile::resolve(&env(None, Some(false)), None, Some(&mem));
        assert!(!p.url_elicitation);
    }

    #[test]
    fn resolves_from_parsed_initialize() {
        let e = parse_envelope(
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"url":{}}}}}"#,
        )
        .expect("parse");
        let p = ClientProfile::resolve(&e, None, None);
        assert_eq!(p.challenge_form(), ChallengeForm::UrlElicitationError);
    }

    #[test]
    fn revision_format() {
        assert!(version_at_least("2025-11-25", "2025-11-25"));
        assert!(!version_at_least("2025-06-18", "2025-11-25"));
        assert!(!version_at_least("2025-11-25x", "2025-11-25"));
        assert!(!version_at_least("9999", "2025-11-25"));
        assert!(!version_at_least("2025/11/25", "2025-11-25"));
    }

    #[test]
    fn profiles_are_remembered_per_key() {
        let profiles = ClientProfiles::default();
        let key = |mcp: Option<&str>| ProfileKey {
            session: "s".to_owned(),
            server: ServerKey::new("ns", "srv"),
            mcp_session: mcp.map(str::to_owned),
        };
        profiles.remember(key(Some("m1")), profile(Some("2025-11-25"), true));
        assert_eq!(
            profiles.get(&key(Some("m1"))),
            Some(profile(Some("2025-11-25"), true))
        );
        assert_eq!(profiles.get(&key(Some("m2"))), None);
        assert_eq!(profiles.get(&key(None)), None);
        profiles.forget(&key(Some("m1")));
        assert_eq!(profiles.get(&key(Some("m1"))), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let profiles = ClientProfiles::new(10, Duration::from_secs(60));
        for i in 0..200 {
            profiles.remember(
                ProfileKey {
                    session: format!("s{i}"),
                    server: ServerKey::new("ns", "srv"),
                    mcp_session: None,
                },
                ClientProfile::default(),
            );
        }
        profiles.cache.run_pending_tasks();
        assert!(profiles.cache.entry_count() <= 10);
    }
}
