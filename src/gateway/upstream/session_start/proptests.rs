//! Hostile `initialize` answers from remote servers, JSON or SSE: the reply, nothing yet, or a
//! typed [`StartError`], never a panic; SSE events read back their data.

use super::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bodies_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        content_type in prop_oneof![Just("application/json"), Just("text/event-stream"), Just("text/event-stream; charset=utf-8"), Just("text/html"), Just("")],
        complete in any::<bool>(),
    ) {
        let _ = initialize_reply(content_type, &body, complete);
        let _ = sse_events(&body);
    }

    #[test]
    fn sse_like_text_never_panics(text in "(data:|event:|id:|:|\r|\n|[ -~]|é){0,64}", complete in any::<bool>()) {
        let _ = initialize_reply("text/event-stream", text.as_bytes(), complete);
        for event in sse_events(text.as_bytes()) {
            prop_assert!(!event.contains('\r'));
        }
    }

    #[test]
    fn sse_events_read_back_their_data(
        events in proptest::collection::vec(proptest::collection::vec("[ -~]{0,20}", 1..3), 0..4),
        crlf in any::<bool>(),
    ) {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut stream = String::new();
        for lines in &events {
            stream.push_str(&format!("event: message{nl}"));
            for l in lines {
                stream.push_str(&format!("data: {l}{nl}"));
            }
            stream.push_str(nl);
        }
        let expected: Vec<String> = events.iter().map(|lines| lines.join("\n")).collect();
        prop_assert_eq!(sse_events(stream.as_bytes()), expected);
    }
}

/// Found by `sse_like_text_never_panics`: a lone CR ends a line too.
#[test]
fn a_lone_carriage_return_ends_a_line() {
    assert_eq!(sse_events(b"data:\r0\n\n"), vec![String::new()]);
    assert_eq!(sse_events(b"data: a\rdata: b\r\r"), vec!["a\nb".to_owned()]);
}
