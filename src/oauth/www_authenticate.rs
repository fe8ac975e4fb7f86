//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1 / §11.2): one header value may hold several
//! challenges, each a scheme followed by a token68 or comma-separated `name=value` parameters
//! whose values are tokens or quoted strings. The gateway needs the Bearer challenge's
//! RFC 9728 `resource_metadata`, `scope` and RFC 6750 `error` fields. A hand-written parser,
//! because a regex over `name="value"` (the upstream approach) misreads escapes, unquoted values
//! and multiple challenges.

use http::HeaderMap;
use http::header::WWW_AUTHENTICATE;

/// One challenge: `scheme` (lower-cased) and either a token68 or parameters (names lower-cased,
/// values unquoted and unescaped, in header order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub token68: Option<String>,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the gateway uses from a `Bearer` challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// RFC 9728 protected resource metadata URL.
    pub resource_metadata: Option<String>,
    /// Space-separated scopes the resource asks for.
    pub scope: Option<String>,
    /// RFC 6750 error code, e.g. `invalid_token` or `insufficient_scope`.
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub realm: Option<String>,
}

impl BearerChallenge {
    /// The scopes of `scope`, split on whitespace.
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Whether the resource said the token lacks scope (403 step-up).
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }

    fn from_challenge(c: &Challenge) -> Self {
        let get = |name: &str| c.param(name).map(str::to_owned);
        Self {
            resource_metadata: get("resource_metadata"),
            scope: get("scope"),
            error: get("error"),
            error_description: get("error_description"),
            realm: get("realm"),
        }
    }
}

/// Why a header value could not be parsed. Positions are byte offsets into the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty WWW-Authenticate header")]
    Empty,
    #[error("WWW-Authenticate header is not valid UTF-8")]
    NotUtf8,
    #[error("unexpected character {found:?} at byte {at} of WWW-Authenticate")]
    UnexpectedChar { at: usize, found: char },
    #[error("unexpected end of WWW-Authenticate after byte {at}")]
    UnexpectedEnd { at: usize },
    #[error("unterminated quoted string starting at byte {at} of WWW-Authenticate")]
    UnterminatedQuote { at: usize },
    #[error("parameter `{name}` appears twice in one challenge")]
    DuplicateParam { name: String },
}

/// Parses every challenge in one header value.
pub fn parse_challenges(value: &str) -> Result<Vec<Challenge>, ParseError> {
    let mut p = Parser {
        s: value.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_list_separators();
        if p.at_end() {
            break;
        }
        out.push(p.challenge()?);
        p.skip_ows();
        if p.at_end() {
            break;
        }
        p.expect(b',')?;
    }
    if out.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(out)
}

/// The first `Bearer` challenge of a header value, if any.
pub fn parse_bearer(value: &str) -> Result<Option<BearerChallenge>, ParseError> {
    Ok(parse_challenges(value)?
        .iter()
        .find(|c| c.scheme == "bearer")
        .map(BearerChallenge::from_challenge))
}

/// The first `Bearer` challenge across all `WWW-Authenticate` headers of a response.
/// A malformed value fails the whole lookup: a half-understood challenge is not acted on.
pub fn bearer_from_headers(headers: &HeaderMap) -> Result<Option<BearerChallenge>, ParseError> {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let text = value.to_str().map_err(|_| ParseError::NotUtf8)?;
        if let Some(found) = parse_bearer(text)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and empty list elements (`#rule` allows `, ,`).
    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> ParseError {
        match std::str::from_utf8(&self.s[self.pos..])
            .ok()
            .and_then(|rest| rest.chars().next())
        {
            Some(found) => ParseError::UnexpectedChar {
                at: self.pos,
                found,
            },
            // Mid-character offsets cannot happen (we only stop on ASCII), but stay total.
            None if !self.at_end() => ParseError::UnexpectedChar {
                at: self.pos,
                found: char::REPLACEMENT_CHARACTER,
            },
            None => ParseError::UnexpectedEnd { at: self.pos },
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), ParseError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn token(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.unexpected());
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    /// `auth-scheme [ 1*SP ( token68 / #auth-param ) ]`
    fn challenge(&mut self) -> Result<Challenge, ParseError> {
        let scheme = self.token()?.to_ascii_lowercase();
        let mut challenge = Challenge {
            scheme,
            token68: None,
            params: Vec::new(),
        };
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            return Ok(challenge);
        }
        self.skip_ows();
        if self.at_end() || self.peek() == Some(b',') {
            return Ok(challenge);
        }
        if let Some(t68) = self.try_token68() {
            challenge.token68 = Some(t68);
            return Ok(challenge);
        }
        loop {
            let (name, value) = self.auth_param()?;
            if challenge
                .params
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                return Err(ParseError::DuplicateParam { name });
            }
            challenge.params.push((name, value));
            // After a parameter: end, or a comma followed by another parameter of this
            // challenge, or by the next challenge (left for the caller).
            let save = self.pos;
            self.skip_ows();
            if self.at_end() {
                return Ok(challenge);
            }
            self.expect(b',')?;
            self.skip_list_separators();
            if self.at_end() || !self.next_is_param() {
                self.pos = save;
                return Ok(challenge);
            }
        }
    }

    /// A token68 is only recognised when it is the whole challenge body (followed by the end or
    /// a comma); otherwise the body is parameters.
    fn try_token68(&mut self) -> Option<String> {
        let start = self.pos;
        let mut i = self.pos;
        while self.s.get(i).copied().is_some_and(is_token68_char) {
            i += 1;
        }
        if i == start {
            return None;
        }
        while self.s.get(i) == Some(&b'=') {
            i += 1;
        }
        let end = i;
        while matches!(self.s.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if i < self.s.len() && self.s[i] != b',' {
            return None;
        }
        self.pos = end;
        Some(String::from_utf8_lossy(&self.s[start..end]).into_owned())
    }

    /// Whether the input at `pos` is `token BWS "="` (a parameter rather than a new challenge).
    fn next_is_param(&self) -> bool {
        let mut i = self.pos;
        let start = i;
        while self.s.get(i).copied().is_some_and(is_tchar) {
            i += 1;
        }
        if i == start {
            return false;
        }
        while matches!(self.s.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        self.s.get(i) == Some(&b'=')
    }

    /// `token BWS "=" BWS ( token / quoted-string )`
    fn auth_param(&mut self) -> Result<(String, String), ParseError> {
        let name = self.token()?.to_ascii_lowercase();
        self.skip_ows();
        self.expect(b'=')?;
        self.skip_ows();
        let value = if self.peek() == Some(b'"') {
            self.quoted_string()?
        } else {
            self.token()?
        };
        Ok((name, value))
    }

    fn quoted_string(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(ParseError::UnterminatedQuote { at: open });
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    // Only ASCII delimiters were removed, so the bytes stay valid UTF-8.
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(ParseError::UnterminatedQuote { at: open }),
                        Some(c) if c == b'\t' || c >= 0x20 && c != 0x7f => {
                            out.push(c);
                            self.pos += 1;
                        }
                        Some(_) => return Err(self.unexpected()),
                    }
                }
                b'\t' => {
                    out.push(b);
                    self.pos += 1;
                }
                c if c < 0x20 || c == 0x7f => return Err(self.unexpected()),
                c => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bearer(v: &str) -> BearerChallenge {
        parse_bearer(v).unwrap().expect("a bearer challenge")
    }

    #[test]
    fn typescript_sdk_header() {
        let b = bearer(
            r#"Bearer error="invalid_token", error_description="Missing Authorization header", scope="mcp:tools", resource_metadata="http://127.0.0.1:5557/.well-known/oauth-protected-resource/mcp""#,
        );
        assert_eq!(b.error.as_deref(), Some("invalid_token"));
        assert_eq!(
            b.error_description.as_deref(),
            Some("Missing Authorization header")
        );
        assert_eq!(b.scope.as_deref(), Some("mcp:tools"));
        assert_eq!(
            b.resource_metadata.as_deref(),
            Some("http://127.0.0.1:5557/.well-known/oauth-protected-resource/mcp")
        );
    }

    #[test]
    fn python_sdk_header() {
        let b = bearer(
            r#"Bearer error="invalid_token", error_description="Authentication required", resource_metadata="http://127.0.0.1:5559/.well-known/oauth-protected-resource/mcp""#,
        );
        assert_eq!(b.error.as_deref(), Some("invalid_token"));
        assert_eq!(b.scope, None);
        assert!(b.resource_metadata.unwrap().ends_with("/mcp"));
    }

    #[test]
    fn two_challenges_in_one_header() {
        let all = parse_challenges(r#"Basic realm="x", Bearer scope="a b""#).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].scheme, "basic");
        assert_eq!(all[0].param("realm"), Some("x"));
        assert_eq!(all[1].scheme, "bearer");
        assert_eq!(
            bearer(r#"Basic realm="x", Bearer scope="a b""#).scopes(),
            ["a", "b"]
        );
    }

    #[test]
    fn bearer_first_then_other_scheme() {
        let all =
            parse_challenges(r#"Bearer realm="api", error=insufficient_scope, DPoP algs="ES256""#)
                .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].param("error"), Some("insufficient_scope"));
        assert_eq!(all[1].scheme, "dpop");
        assert_eq!(all[1].param("algs"), Some("ES256"));
        assert!(bearer(r#"Bearer error=insufficient_scope"#).is_insufficient_scope());
    }

    #[test]
    fn case_insensitive_scheme_and_names_and_bws() {
        let b = bearer(r#"bEaReR   Scope = "read"  ,  RESOURCE_METADATA="https://x/y""#);
        assert_eq!(b.scope.as_deref(), Some("read"));
        assert_eq!(b.resource_metadata.as_deref(), Some("https://x/y"));
    }

    #[test]
    fn escapes_in_quoted_strings() {
        let b = bearer(r#"Bearer error_description="say \"hi\" \\ bye", realm="a,b""#);
        assert_eq!(b.error_description.as_deref(), Some(r#"say "hi" \ bye"#));
        assert_eq!(b.realm.as_deref(), Some("a,b"));
    }

    #[test]
    fn token68_and_bare_schemes() {
        let all = parse_challenges("Negotiate abc+/def==, Bearer, Basic").unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].token68.as_deref(), Some("abc+/def=="));
        assert_eq!(all[1].scheme, "bearer");
        assert!(all[1].params.is_empty());
        assert_eq!(bearer("Bearer"), BearerChallenge::default());
    }

    #[test]
    fn empty_list_elements_are_skipped() {
        let all = parse_challenges(r#" , Bearer scope="a",, , realm="r" ,"#).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].param("realm"), Some("r"));
    }

    #[test]
    fn no_bearer_challenge() {
        assert_eq!(parse_bearer(r#"Basic realm="x""#).unwrap(), None);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert_eq!(parse_challenges(""), Err(ParseError::Empty));
        assert_eq!(parse_challenges("  , "), Err(ParseError::Empty));
        assert_eq!(
            parse_challenges(r#"Bearer scope="abc"#),
            Err(ParseError::UnterminatedQuote { at: 13 })
        );
        assert_eq!(
            parse_challenges(r#"Bearer scope="abc\"#),
            Err(ParseError::UnterminatedQuote { at: 13 })
        );
        assert!(matches!(
            parse_challenges(r#"Bearer scope="a" junk"#),
            Err(ParseError::UnexpectedChar { found: 'j', .. })
        ));
        assert!(matches!(
            parse_challenges(r#"Bearer a="x", scope="#),
            Err(ParseError::UnexpectedEnd { .. })
        ));
        assert!(matches!(
            parse_challenges("Bearer a=b c=d"),
            Err(ParseError::UnexpectedChar { found: 'c', .. })
        ));
        assert_eq!(
            parse_challenges(r#"Bearer scope="a", SCOPE="b""#),
            Err(ParseError::DuplicateParam {
                name: "scope".into()
            })
        );
        assert!(matches!(
            parse_challenges("Bearer scope=\"a\u{1}\""),
            Err(ParseError::UnexpectedChar { found: '\u{1}', .. })
        ));
        assert!(matches!(
            parse_challenges("=Bearer"),
            Err(ParseError::UnexpectedChar { found: '=', .. })
        ));
    }

    #[test]
    fn non_ascii_in_quoted_string_is_kept() {
        let b = bearer(r#"Bearer error_description="zugriff verweigert – bitte anmelden""#);
        assert_eq!(
            b.error_description.as_deref(),
            Some("zugriff verweigert – bitte anmelden")
        );
    }

    #[test]
    fn header_map_lookup_uses_all_values() {
        let mut h = HeaderMap::new();
        h.append(WWW_AUTHENTICATE, "Basic realm=\"x\"".parse().unwrap());
        h.append(WWW_AUTHENTICATE, "Bearer scope=\"s\"".parse().unwrap());
        let b = bearer_from_headers(&h).unwrap().unwrap();
        assert_eq!(b.scope.as_deref(), Some("s"));
        assert_eq!(bearer_from_headers(&HeaderMap::new()).unwrap(), None);
    }

    fn quote(v: &str) -> String {
        let mut s = String::from("\"");
        for c in v.chars() {
            if c == '"' || c == '\\' {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in any::<String>()) {
            let _ = parse_challenges(&s);
        }

        #[test]
        fn arbitrary_header_like_input_never_panics(s in r#"[A-Za-z =",\\\t!#~+/]{0,40}"#) {
            let _ = parse_challenges(&s);
        }

        #[test]
        fn rendered_bearer_round_trips(
            rm in "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,40}",
            scope in "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,40}",
            error in "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,20}",
            desc in "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,60}",
            other_first in any::<bool>(),
        ) {
            let bearer = format!(
                "Bearer resource_metadata={}, scope={}, error={}, error_description={}",
                quote(&rm), quote(&scope), quote(&error), quote(&desc)
            );
            let header = if other_first {
                format!("Basic realm=\"r\", {bearer}, Negotiate abc==")
            } else {
                bearer
            };
            let parsed = parse_bearer(&header).unwrap().unwrap();
            prop_assert_eq!(parsed.resource_metadata.as_deref(), Some(rm.as_str()));
            prop_assert_eq!(parsed.scope.as_deref(), Some(scope.as_str()));
            prop_assert_eq!(parsed.error.as_deref(), Some(error.as_str()));
            prop_assert_eq!(parsed.error_description.as_deref(), Some(desc.as_str()));
        }
    }
}
