//! Query-string parsing for the browser endpoints. A parameter given twice is refused: an
//! attacker must not be able to smuggle a second `state` or `iss` past a first-wins parser.

use std::collections::HashMap;

#[derive(Debug, PartialEq, Eq)]
pub(super) struct DuplicateParameter(pub String);

pub(super) fn parse(raw: Option<&str>) -> Result<HashMap<String, String>, DuplicateParameter> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(DuplicateParameter(k.into_owned()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes() {
        let q = parse(Some("state=a%2Bb&code=c+d")).expect("parse");
        assert_eq!(q["state"], "a+b");
        assert_eq!(q["code"], "c d");
        assert!(parse(None).expect("empty").is_empty());
    }

    #[test]
    fn refuses_duplicates() {
        assert_eq!(
            parse(Some("state=a&state=b")),
            Err(DuplicateParameter("state".into()))
        );
    }
}

#[cfg(test)]
mod proptests;
