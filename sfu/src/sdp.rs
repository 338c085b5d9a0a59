//! The session descriptions the engine exchanges, so callers need not depend on str0m, and
//! parsing them from a client's text.
//!
//! Parsing is where a client's SDP first meets str0m. Its errors are turned into
//! [`SfuError::BadSdp`], whose message is fixed: str0m's parser names the failing position as a
//! memory address (`PointerOffset(0x7f…)`), which is noise to a client and leaks a heap address.
//! A parser panic is caught the same way, so a bad SDP costs its sender a refusal and nothing
//! more.
//!
//! Going the other way, a subscriber offer is narrowed before it leaves: str0m lists every
//! configured codec on each new m-line, but a forwarded track arrives only in the codecs its
//! publisher negotiated (often one). The m-line offers those alone ([`narrow_offer`]), so a client
//! that cannot take them says so in its answer rather than accepting a codec it will never get.

use std::io::Cursor;

pub use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::Mid;

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

/// The payload types one m-line of an offer keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Narrowing {
    pub mid: Mid,
    /// Each kept payload type (a codec's and its retransmission's).
    pub payload_types: Vec<u8>,
}

/// `offer` with each m-line that `keep` names listing only the payload types given for it: the
/// format list, and the `rtpmap`, `fmtp` and `rtcp-fb` lines of the others removed. An m-line left
/// with none of its formats is kept whole (an m-line needs one). An offer str0m made that the
/// SDP library cannot take back is sent as it was, and logged.
pub(crate) fn narrow_offer(offer: SdpOffer, keep: &[Narrowing]) -> SdpOffer {
    if keep.is_empty() {
        return offer;
    }
    match narrowed(&offer.to_sdp_string(), keep) {
        Ok(narrowed) => narrowed,
        Err(detail) => {
            tracing::warn!(%detail, "subscriber offer not narrowed to the tracks' codecs");
            offer
        }
    }
}

fn narrowed(text: &str, keep: &[Narrowing]) -> Result<SdpOffer, String> {
    let mut session = sdp::SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .map_err(|e| e.to_string())?;
    for media in &mut session.media_descriptions {
        let Some(mid) = media.attribute("mid").flatten().map(str::to_owned) else {
            continue;
        };
        let Some(narrowing) = keep.iter().find(|n| n.mid.to_string() == mid) else {
            continue;
        };
        let kept = |pt: &str| {
            pt.parse::<u8>()
                .is_ok_and(|pt| narrowing.payload_types.contains(&pt))
        };
        if !media.media_name.formats.iter().any(|f| kept(f)) {
            continue;
        }
        media.media_name.formats.retain(|f| kept(f));
        media.attributes.retain(|attribute| {
            if !matches!(attribute.key.as_str(), "rtpmap" | "fmtp" | "rtcp-fb") {
                return true;
            }
            // `a=rtcp-fb:* …` applies to every format and stays.
            attribute
                .value
                .as_deref()
                .and_then(|v| v.split_whitespace().next())
                .is_none_or(|pt| pt == "*" || kept(pt))
        });
    }
    SdpOffer::from_sdp_string(&session.marshal()).map_err(|e| e.to_string())
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

    /// The payload types of an SDP's m-line `mid`, and its `rtpmap` payload types.
    fn formats(sdp: &str, mid: Mid) -> (Vec<u8>, Vec<u8>) {
        let mut lines = Vec::new();
        let mut current: Vec<&str> = Vec::new();
        for line in sdp.lines() {
            if line.starts_with("m=") && !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            current.push(line);
        }
        lines.push(current);
        let wanted = format!("a=mid:{mid}");
        let line = lines
            .into_iter()
            .find(|l| l.contains(&wanted.as_str()))
            .expect("the m-line");
        let listed = line[0]
            .split_whitespace()
            .skip(3)
            .map(|pt| pt.parse().expect("a payload type"))
            .collect();
        let mapped = line
            .iter()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .map(|l| {
                l.split_whitespace()
                    .next()
                    .and_then(|pt| pt.parse().ok())
                    .expect("a payload type")
            })
            .collect();
        (listed, mapped)
    }

    /// An offer of one send-only m-line per kind, from a connection with every codec.
    fn offer_of(
        rtc: &mut str0m::Rtc,
        kinds: &[str0m::media::MediaKind],
    ) -> (Vec<Mid>, SdpOffer, str0m::change::SdpPendingOffer) {
        let mut change = rtc.sdp_api();
        let mids = kinds
            .iter()
            .map(|kind| {
                change.add_media(*kind, str0m::media::Direction::SendOnly, None, None, None)
            })
            .collect();
        let (offer, pending) = change.apply().expect("an offer");
        (mids, offer, pending)
    }

    #[test]
    fn an_offer_is_narrowed_to_the_payload_types_given_and_stays_answerable() {
        use str0m::media::MediaKind::{Audio, Video};
        let now = std::time::Instant::now();
        let mut rtc = str0m::Rtc::builder().build(now);
        let (mids, offer, pending) = offer_of(&mut rtc, &[Video, Audio]);
        let (video, audio) = (mids[0], mids[1]);
        let original = offer.to_sdp_string();
        let vp8 = rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| p.spec().codec == str0m::format::Codec::Vp8)
            .copied()
            .expect("VP8 configured");
        let mut keep = vec![*vp8.pt()];
        keep.extend(vp8.resend().map(|pt| *pt));
        let (all, _) = formats(&original, video);
        assert!(all.len() > keep.len(), "str0m offers every codec: {all:?}");

        let narrowed = narrow_offer(
            offer,
            &[Narrowing {
                mid: video,
                payload_types: keep.clone(),
            }],
        );
        let text = narrowed.to_sdp_string();
        assert_eq!(formats(&text, video), (keep.clone(), keep.clone()));
        assert_eq!(
            formats(&text, audio),
            formats(&original, audio),
            "other m-lines untouched"
        );
        assert!(text.contains("a=rtcp-fb:") && text.contains("a=ssrc-group:FID"));

        // A client answers it with the one codec, and the offerer takes the answer.
        let mut client = str0m::Rtc::builder().build(now);
        let answer = client.sdp_api().accept_offer(narrowed).expect("answered");
        let (answered, _) = formats(&answer.to_sdp_string(), video);
        assert_eq!(answered, keep);
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .expect("the narrowed answer is accepted");
    }

    #[test]
    fn narrowing_never_empties_an_m_line() {
        let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
        let (mids, offer, _pending) = offer_of(&mut rtc, &[str0m::media::MediaKind::Audio]);
        let audio = mids[0];
        let original = offer.to_sdp_string();
        let (listed, _) = formats(&original, audio);
        let absent = (96..=127)
            .find(|pt| !listed.contains(pt))
            .expect("a free payload type");
        let narrowed = narrow_offer(
            offer,
            &[Narrowing {
                mid: audio,
                payload_types: vec![absent],
            }],
        );
        assert_eq!(
            formats(&narrowed.to_sdp_string(), audio),
            formats(&original, audio)
        );
    }
}
