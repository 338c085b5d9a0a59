//! The session descriptions the engine exchanges, so callers need not depend on str0m, and
//! parsing them from a client's text.
//!
//! Parsing is where a client's SDP first meets str0m. Its errors are turned into
//! [`SfuError::BadSdp`], whose message is fixed: str0m's parser names the failing position as a
//! memory address (`PointerOffset(0x7f…)`), which is noise to a client and leaks a heap address.
//! A parser panic is caught the same way, so a bad SDP costs its sender a refusal and nothing
//! more.

pub use str0m::change::{SdpAnswer, SdpOffer};

use crate::engine::{SfuError, catch_panic};

/// Parses a client's offer (the text of an `RTCSessionDescription` of type `offer`).
pub fn parse_offer(text: &str) -> Result<SdpOffer, SfuError> {
    parse(text, SdpOffer::from_sdp_string)
}

/// Parses a client's answer (the text of an `RTCSessionDescription` of type `answer`).
pub fn parse_answer(text: &str) -> Result<SdpAnswer, SfuError> {
    parse(text, SdpAnswer::from_sdp_string)
}

fn parse<T, E: std::fmt::Display>(
    text: &str,
    parser: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, SfuError> {
    let detail = match catch_panic(|| parser(text)) {
        Ok(Ok(parsed)) => return Ok(parsed),
        Ok(Err(err)) => err.to_string(),
        Err(panic) => format!("the parser panicked: {panic}"),
    };
    tracing::debug!(%detail, "SDP refused");
    Err(SfuError::BadSdp { detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_sdp_is_refused_with_a_fixed_message_and_no_address() {
        let inputs = [
            "v=0\r\nthis is not sdp\r\n",
            "",
            "v=x\r\no=- 1 2 IN IP4 127.0.0.1\r\n",
            "\u{0}\u{1}garbage",
        ];
        for input in inputs {
            let offer = parse_offer(input).expect_err("not an offer");
            let answer = parse_answer(input).expect_err("not an answer");
            let raw = [
                SdpOffer::from_sdp_string(input)
                    .err()
                    .map(|e| e.to_string()),
                SdpAnswer::from_sdp_string(input)
                    .err()
                    .map(|e| e.to_string()),
            ];
            for (err, raw) in [offer, answer].into_iter().zip(raw) {
                let message = err.to_string();
                assert_eq!(message, "the session description is not valid SDP");
                assert!(!message.contains("0x"), "no address in {message:?}");
                let SfuError::BadSdp { detail } = err else {
                    panic!("not BadSdp: {err:?}");
                };
                assert_eq!(Some(detail), raw, "str0m's account is kept for logs");
            }
        }
    }

    #[test]
    fn a_good_sdp_parses() {
        let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
        let mut change = rtc.sdp_api();
        change.add_media(
            str0m::media::MediaKind::Audio,
            str0m::media::Direction::SendOnly,
            None,
            None,
            None,
        );
        let (offer, _pending) = change.apply().expect("an offer");
        let parsed = parse_offer(&offer.to_sdp_string()).expect("parses");
        assert_eq!(parsed.to_sdp_string(), offer.to_sdp_string());
    }
}
