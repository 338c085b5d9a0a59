//! Pairing a candidate's phone as a second camera: the secrets, the rules, the QR code.
//!
//! A pairing has two secrets that open the same thing: a 256-bit token (in the QR code and the
//! link `{public_base_url}/pair/{token}`) and an 8-character manual code for when scanning fails,
//! typed at `{public_base_url}/pair`. Both are single-use, expire after [`PAIRING_TTL_SECS`] and
//! are stored only as SHA-256. The code's alphabet leaves out characters people confuse (0/O,
//! 1/I/L); 31⁸ ≈ 8.5 × 10¹¹ codes, live for five minutes behind a per-IP rate limit, leave guessing
//! hopeless. The QR code is drawn here, as SVG: no third party ever sees the link.
//!
//! Plain functions with time as an argument; the routes in `routes::phone` do the I/O.

use qrcode::QrCode;
use qrcode::render::svg;

use crate::error::{ApiError, PairingProblem};

/// How long a QR code or manual code can be used.
pub const PAIRING_TTL_SECS: i64 = 300;
/// Characters of a manual code: no 0/O, 1/I/L.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Length of a manual code.
pub const CODE_LEN: usize = 8;

/// A new manual code, each character uniform over [`CODE_ALPHABET`] (rejection sampling, so no
/// character is likelier than another).
pub fn generate_code() -> Result<String, ApiError> {
    let alphabet = CODE_ALPHABET.len();
    // The largest multiple of the alphabet size that fits a byte: bytes above it are redrawn.
    let limit = 256 - 256 % alphabet;
    let mut code = String::with_capacity(CODE_LEN);
    while code.len() < CODE_LEN {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
        for byte in bytes {
            if usize::from(byte) < limit && code.len() < CODE_LEN {
                code.push(char::from(CODE_ALPHABET[usize::from(byte) % alphabet]));
            }
        }
    }
    Ok(code)
}

/// A code as people type it (any case, spaces or dashes between groups) in its canonical form;
/// `None` if it cannot be one of ours.
pub fn normalize_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid = code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// A code as shown to people: two groups of four.
pub fn display_code(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(head), Some(tail)) if !tail.is_empty() => format!("{head}-{tail}"),
        _ => code.to_owned(),
    }
}

/// Where a pairing stands, from its row's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairingState {
    /// Unix seconds.
    pub expires_at: i64,
    /// Set when redeemed.
    pub used_at: Option<i64>,
    /// Set when replaced or removed.
    pub revoked_at: Option<i64>,
}

impl PairingState {
    /// Whether a phone may redeem it at `now`; why not otherwise. Used beats revoked beats
    /// expired, so a person is told the most useful reason.
    pub fn check(&self, now: i64) -> Result<(), PairingProblem> {
        if self.used_at.is_some() {
            return Err(PairingProblem::Used);
        }
        if self.revoked_at.is_some() {
            return Err(PairingProblem::Revoked);
        }
        if now >= self.expires_at {
            return Err(PairingProblem::Expired);
        }
        Ok(())
    }
}

/// The room identity of a candidate's phone. One per candidate, so a newly paired phone takes
/// over the identity (and the room replaces the old phone's connection).
pub fn phone_identity(candidate_participant_id: &str) -> String {
    format!("phone-{candidate_participant_id}")
}

/// The pairing link as a QR code in SVG.
pub fn qr_svg(url: &str) -> Result<String, ApiError> {
    let code = QrCode::new(url.as_bytes())
        .map_err(|e| ApiError::Internal(format!("pairing link does not fit a QR code: {e}")))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        let a = generate_code().expect("code");
        let b = generate_code().expect("code");
        assert_ne!(a, b);
        for code in [&a, &b] {
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.bytes().all(|c| CODE_ALPHABET.contains(&c)), "{code}");
            assert!(!code.contains(['0', 'O', '1', 'I', 'L']));
        }
    }

    #[test]
    fn typed_codes_are_forgiven_their_case_and_grouping() {
        assert_eq!(normalize_code("abcd-efgh"), Some("ABCDEFGH".into()));
        assert_eq!(normalize_code(" ABCD EFGH "), Some("ABCDEFGH".into()));
        assert_eq!(display_code("ABCDEFGH"), "ABCD-EFGH");
        for bad in [
            "",
            "ABCDEFG",
            "ABCDEFGHJ",
            "ABCDEFG0",
            "ABCD_EFGH",
            "ABCDÉFGH",
        ] {
            assert_eq!(normalize_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_pairing_works_once_and_only_before_it_expires() {
        let fresh = PairingState {
            expires_at: 1_000 + PAIRING_TTL_SECS,
            used_at: None,
            revoked_at: None,
        };
        assert_eq!(fresh.check(1_000), Ok(()));
        assert_eq!(fresh.check(1_000 + PAIRING_TTL_SECS - 1), Ok(()));
        assert_eq!(
            fresh.check(1_000 + PAIRING_TTL_SECS),
            Err(PairingProblem::Expired)
        );
        let used = PairingState {
            used_at: Some(1_010),
            ..fresh
        };
        assert_eq!(used.check(1_020), Err(PairingProblem::Used));
        let replaced = PairingState {
            revoked_at: Some(1_010),
            ..fresh
        };
        assert_eq!(replaced.check(1_020), Err(PairingProblem::Revoked));
        assert_eq!(
            PairingState {
                used_at: Some(1_010),
                revoked_at: Some(1_011),
                ..fresh
            }
            .check(5_000),
            Err(PairingProblem::Used),
            "the most useful reason wins"
        );
    }

    #[test]
    fn each_candidate_has_one_phone_identity() {
        assert_eq!(phone_identity("p1"), phone_identity("p1"));
        assert_ne!(phone_identity("p1"), phone_identity("p2"));
        assert_ne!(phone_identity("p1"), "p1", "never a person's identity");
    }

    /// Draws the SVG (resvg) and reads the QR code back (rqrr), as a phone's camera would.
    #[test]
    fn the_qr_code_decodes_to_exactly_the_pairing_link() {
        let url = "https://interviews.example.com/pair/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde";
        let svg = qr_svg(url).expect("svg");
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"), "{svg}");

        let tree =
            resvg::usvg::Tree::from_str(&svg, &resvg::usvg::Options::default()).expect("valid SVG");
        let size = tree.size().to_int_size();
        let mut pixmap =
            resvg::tiny_skia::Pixmap::new(size.width(), size.height()).expect("a canvas");
        pixmap.fill(resvg::tiny_skia::Color::WHITE);
        resvg::render(
            &tree,
            resvg::tiny_skia::Transform::default(),
            &mut pixmap.as_mut(),
        );
        let (width, height) = (pixmap.width() as usize, pixmap.height() as usize);
        let pixels = pixmap.data();
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
            pixels[(y * width + x) * 4]
        });
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code in the picture");
        let (_meta, content) = grids[0].decode().expect("it decodes");
        assert_eq!(content, url);
    }
}
