//! Reading a caller's request body once, within the configured limit.

use super::error::GatewayError;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use std::time::Duration;

/// The whole body, or [`GatewayError::BodyTooLarge`] as soon as it is known to exceed `limit`
/// (from `Content-Length` before reading, or while reading a chunked body), or
/// [`GatewayError::BodyTimeout`] when it has not all arrived within `deadline`.
pub async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let collected = tokio::time::timeout(deadline, Limited::new(body, limit).collect())
        .await
        .map_err(|_| GatewayError::BodyTimeout(deadline))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Err(e) => Err(GatewayError::BodyRead(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_trickled_body_times_out() {
        // One byte every 100 ms, forever.
        let body = Body::from_stream(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"{")), ()))
        }));
        let err = read(body, &HeaderMap::new(), 1 << 20, SECOND)
            .await
            .expect_err("too slow");
        assert!(matches!(err, GatewayError::BodyTimeout(d) if d == SECOND));
        assert_eq!(err.status(), http::StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn reads_bodies_up_to_the_limit() {
        let got = read(Body::from("12345"), &HeaderMap::new(), 5, SECOND)
            .await
            .expect("fits");
        assert_eq!(&got[..], b"12345");
    }

    #[tokio::test]
    async fn refuses_larger_bodies_with_or_without_content_length() {
        let err = read(Body::from("123456"), &HeaderMap::new(), 5, SECOND)
            .await
            .expect_err("too large");
        assert!(matches!(err, GatewayError::BodyTooLarge { limit: 5 }));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "999999".parse().expect("value"));
        let err = read(Body::from("1"), &h, 5, SECOND)
            .await
            .expect_err("declared too large");
        assert!(matches!(err, GatewayError::BodyTooLarge { limit: 5 }));
    }
}
