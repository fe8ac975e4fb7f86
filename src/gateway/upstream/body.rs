//! Reading a caller's request body once, within the configured limit.

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use std::time::Duration;

/// Why a caller's body was not read. The gateway answers each as its own error (see
/// `GatewayError`'s `From<BodyError>`).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body exceeds the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("the request body could not be read: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the request body did not arrive within {0:?}")]
    Timeout(Duration),
}

/// The whole body, or [`BodyError::TooLarge`] as soon as it is known to exceed `limit`
/// (from `Content-Length` before reading, or while reading a chunked body), or
/// [`BodyError::Timeout`] when it has not all arrived within `deadline`.
pub async fn read(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let collected = tokio::time::timeout(deadline, Limited::new(body, limit).collect())
        .await
        .map_err(|_| BodyError::Timeout(deadline))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { limit })
        }
        Err(e) => Err(BodyError::Read(e)),
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
        assert!(matches!(err, BodyError::Timeout(d) if d == SECOND));
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
        assert!(matches!(err, BodyError::TooLarge { limit: 5 }));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, "999999".parse().expect("value"));
        let err = read(Body::from("1"), &h, 5, SECOND)
            .await
            .expect_err("declared too large");
        assert!(matches!(err, BodyError::TooLarge { limit: 5 }));
    }
}
