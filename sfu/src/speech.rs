//! Who is speaking, from the audio level RTP header extension (RFC 6464).
//!
//! Browsers put the level of every audio packet in its header, so the SFU never decodes audio to
//! know who talks. Levels are smoothed with a fast attack (a word registers within a few packets)
//! and a slow release (a pause between words does not end it), and speaking starts and stops at
//! different thresholds so the highlight does not flicker.

/// Smoothed level (dBov, 0 loudest, -127 silent) above which a track starts speaking.
const START_DBOV: f32 = -50.0;
/// Smoothed level below which it stops.
const STOP_DBOV: f32 = -60.0;
/// Weight of a packet louder than the smoothed level (at 50 packets/s: about 60 ms to react).
const ATTACK: f32 = 0.3;
/// Weight of a packet quieter than it (about 400 ms to fade).
const RELEASE: f32 = 0.05;

/// Speaking state of one audio track.
#[derive(Debug, Clone)]
pub struct SpeechDetector {
    level: f32,
    speaking: bool,
}

impl Default for SpeechDetector {
    fn default() -> Self {
        SpeechDetector {
            level: -127.0,
            speaking: false,
        }
    }
}

impl SpeechDetector {
    /// Takes one packet's level (negative dBov); returns the new state when it changed.
    pub fn observe(&mut self, dbov: i8) -> Option<bool> {
        let level = f32::from(dbov.clamp(-127, 0));
        let weight = if level > self.level { ATTACK } else { RELEASE };
        self.level += (level - self.level) * weight;
        let speaking = if self.speaking {
            self.level > STOP_DBOV
        } else {
            self.level > START_DBOV
        };
        (speaking != self.speaking).then(|| {
            self.speaking = speaking;
            speaking
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talking_starts_and_stops_with_hysteresis() {
        let mut detector = SpeechDetector::default();
        assert_eq!(detector.observe(-127), None);
        let changes: Vec<bool> = (0..50).filter_map(|_| detector.observe(-20)).collect();
        assert_eq!(
            changes,
            vec![true],
            "sustained loud audio starts speaking once"
        );
        // A short dip does not stop it.
        for _ in 0..3 {
            assert_eq!(detector.observe(-127), None);
        }
        let stopped = (0..100).find_map(|_| detector.observe(-127));
        assert_eq!(stopped, Some(false), "silence stops it");
        // Background noise below the start threshold never starts speaking.
        assert!((0..200).all(|_| detector.observe(-70).is_none()));
        // A short loud burst (a beep, a word) registers within a few packets.
        let mut quiet = SpeechDetector::default();
        let burst: Vec<bool> = (0..6).filter_map(|_| quiet.observe(-8)).collect();
        assert_eq!(burst, vec![true]);
    }
}
