//! The RFC 8693 token-exchange request a policy describes, as form fields plus (for
//! `client_secret_basic`) HTTP Basic credentials. Pure: no I/O, so every field is unit-tested.

use crate::registry::{ClientAuthMethod, PolicyClientAuth, PolicyRegistration};
use secrecy::{ExposeSecret, SecretString};
use url::form_urlencoded::byte_serialize;

/// `grant_type` of RFC 8693 §2.1.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// One token-exchange request, ready to POST.
pub struct ExchangeRequest<'a> {
    /// Form fields in a stable order (the subject token among them: never log this).
    pub form: Vec<(&'static str, &'a str)>,
    /// `client_secret_basic` credentials, already form-urlencoded (RFC 6749 §2.3.1).
    pub basic: Option<(String, SecretString)>,
}

impl std::fmt::Debug for ExchangeRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.form.iter().map(|(k, _)| *k).collect();
        f.debug_struct("ExchangeRequest")
            .field("fields", &names)
            .field("basic", &self.basic.is_some())
            .finish()
    }
}

/// The request exchanging `subject_token` per `policy`. `scope` is the policy's scopes joined
/// by spaces (empty: no `scope` field).
pub fn build<'a>(
    policy: &'a PolicyRegistration,
    subject_token: &'a str,
    scope: &'a str,
) -> ExchangeRequest<'a> {
    let mut form: Vec<(&'static str, &'a str)> = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("subject_token", subject_token),
        ("subject_token_type", policy.subject_token_type.urn()),
    ];
    if let Some(t) = &policy.requested_token_type {
        form.push(("requested_token_type", t));
    }
    if let Some(a) = &policy.audience {
        form.push(("audience", a));
    }
    if let Some(r) = &policy.resource {
        form.push(("resource", r));
    }
    if !scope.is_empty() {
        form.push(("scope", scope));
    }
    if let Some(c) = &policy.connector_id {
        form.push(("connector_id", c));
    }
    let mut basic = None;
    match &policy.client_auth {
        None => {}
        Some(PolicyClientAuth::Secret {
            client_id,
            client_secret,
            method: ClientAuthMethod::Post,
        }) => {
            form.push(("client_id", client_id));
            form.push(("client_secret", client_secret.expose_secret()));
        }
        Some(PolicyClientAuth::Secret {
            client_id,
            client_secret,
            method: ClientAuthMethod::Basic,
        }) => {
            let user: String = byte_serialize(client_id.as_bytes()).collect();
            let password: String =
                byte_serialize(client_secret.expose_secret().as_bytes()).collect();
            basic = Some((user, SecretString::from(password)));
        }
        // RFC 8705 §2: the certificate authenticates; `client_id` names the client.
        Some(PolicyClientAuth::MutualTls {
            client_id: Some(id),
            ..
        }) => form.push(("client_id", id)),
        Some(PolicyClientAuth::MutualTls {
            client_id: None, ..
        }) => {}
    }
    ExchangeRequest { form, basic }
}

/// The `scope` value of a policy: its scopes joined by single spaces.
pub fn scope_of(policy: &PolicyRegistration) -> String {
    policy.scopes.join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::registry::{ServerKey, SubjectTokenType};
    use url::Url;

    pub(crate) fn policy() -> PolicyRegistration {
        PolicyRegistration {
            key: ServerKey::new("team-a", "cluster-b"),
            token_endpoint: Url::parse("https://dex.example.com/token").expect("url"),
            expected_issuer: "https://dex.example.com".into(),
            connector_id: None,
            audience: None,
            resource: None,
            scopes: vec!["openid".into(), "groups".into()],
            subject_token_type: SubjectTokenType::IdToken,
            requested_token_type: None,
            client_auth: None,
            allow_private_networks: false,
            generation: 1,
            endpoint_verified: true,
        }
    }

    fn field<'a>(r: &'a ExchangeRequest<'_>, name: &str) -> Option<&'a str> {
        r.form.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn minimal_request_carries_the_grant_subject_and_scope() {
        let p = policy();
        let scope = scope_of(&p);
        let r = build(&p, "subject-tok", &scope);
        assert_eq!(field(&r, "grant_type"), Some(TOKEN_EXCHANGE_GRANT));
        assert_eq!(field(&r, "subject_token"), Some("subject-tok"));
        assert_eq!(
            field(&r, "subject_token_type"),
            Some("urn:ietf:params:oauth:token-type:id_token")
        );
        assert_eq!(field(&r, "scope"), Some("openid groups"));
        for absent in [
            "audience",
            "resource",
            "connector_id",
            "requested_token_type",
            "client_id",
        ] {
            assert_eq!(field(&r, absent), None, "{absent}");
        }
        assert!(r.basic.is_none());
        let shown = format!("{r:?}");
        assert!(!shown.contains("subject-tok"), "{shown}");
    }

    #[test]
    fn optional_fields_are_sent_when_set() {
        let mut p = policy();
        p.subject_token_type = SubjectTokenType::AccessToken;
        p.requested_token_type = Some("urn:ietf:params:oauth:token-type:access_token".into());
        p.audience = Some("cluster-b".into());
        p.resource = Some("https://mcp.b.example.com/mcp".into());
        p.connector_id = Some("cluster-a".into());
        p.scopes.clear();
        let r = build(&p, "t", "");
        assert_eq!(
            field(&r, "subject_token_type"),
            Some("urn:ietf:params:oauth:token-type:access_token")
        );
        assert_eq!(
            field(&r, "requested_token_type"),
            Some("urn:ietf:params:oauth:token-type:access_token")
        );
        assert_eq!(field(&r, "audience"), Some("cluster-b"));
        assert_eq!(field(&r, "resource"), Some("https://mcp.b.example.com/mcp"));
        assert_eq!(field(&r, "connector_id"), Some("cluster-a"));
        assert_eq!(field(&r, "scope"), None, "no scopes: no scope field");
    }

    #[test]
    fn client_secret_basic_is_form_encoded_into_the_header_credentials() {
        let mut p = policy();
        p.client_auth = Some(PolicyClientAuth::Secret {
            client_id: "my client".into(),
            client_secret: SecretString::from("s&cret".to_owned()),
            method: ClientAuthMethod::Basic,
        });
        let r = build(&p, "t", "");
        let (user, password) = r.basic.as_ref().expect("basic credentials");
        assert_eq!(user, "my+client");
        assert_eq!(password.expose_secret(), "s%26cret");
        assert_eq!(field(&r, "client_secret"), None);
        assert_eq!(field(&r, "client_id"), None);
        assert!(!format!("{r:?}").contains("cret"));
    }

    #[test]
    fn client_secret_post_and_mtls_put_the_client_id_in_the_form() {
        let mut p = policy();
        p.client_auth = Some(PolicyClientAuth::Secret {
            client_id: "c".into(),
            client_secret: SecretString::from("s".to_owned()),
            method: ClientAuthMethod::Post,
        });
        let r = build(&p, "t", "");
        assert_eq!(field(&r, "client_id"), Some("c"));
        assert_eq!(field(&r, "client_secret"), Some("s"));
        assert!(r.basic.is_none());

        p.client_auth = Some(PolicyClientAuth::MutualTls {
            client_id: Some("tls-client".into()),
            cert_pem: SecretString::from(String::new()),
            key_pem: SecretString::from(String::new()),
        });
        let r = build(&p, "t", "");
        assert_eq!(field(&r, "client_id"), Some("tls-client"));
        assert_eq!(field(&r, "client_secret"), None);
        assert!(r.basic.is_none());
    }
}
