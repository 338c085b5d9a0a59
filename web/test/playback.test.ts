import { describe, expect, it } from 'vitest';
import { type Manifest, type Take, clock, mediaTimeAt, needsSeek, sessionLength } from '../src/playback';

const take = (over: Partial<Take> = {}): Take => ({
  id: 't1',
  participant: 'p1',
  source: 'camera',
  kind: 'video',
  codec: 'VP8',
  start_ms: 10_000,
  end_ms: 40_000,
  anchors: [],
  gaps: [],
  file: 'recordings/r/t1.webm',
  ...over,
});

describe('mediaTimeAt', () => {
  it('places a late take where it started and nowhere outside it', () => {
    expect(mediaTimeAt(take(), 9_999)).toBeNull();
    expect(mediaTimeAt(take(), 10_000)).toBe(0);
    expect(mediaTimeAt(take(), 25_000)).toBe(15_000);
    expect(mediaTimeAt(take(), 40_001)).toBeNull();
  });

  it('follows the anchors of a sender whose clock runs slow', () => {
    // The sender's media clock advances 990 ms per 1000 ms of ours.
    const slow = take({
      anchors: [
        { media_ms: 0, session_ms: 10_000 },
        { media_ms: 9_900, session_ms: 20_000 },
        { media_ms: 19_800, session_ms: 30_000 },
      ],
    });
    expect(mediaTimeAt(slow, 15_000)).toBeCloseTo(4_950);
    expect(mediaTimeAt(slow, 30_000)).toBe(19_800);
    expect(mediaTimeAt(slow, 35_000)).toBe(24_800);
  });
});

describe('player helpers', () => {
  it('measures the recording, tolerates small drift and prints times', () => {
    const manifest = { duration_ms: 30_000, tracks: [take()] } as unknown as Manifest;
    expect(sessionLength(manifest)).toBe(40_000);
    expect(needsSeek(1_000, 1_080)).toBe(false);
    expect(needsSeek(1_000, 1_150)).toBe(true);
    expect(clock(75_400)).toBe('1:15');
  });
});

describe('drift over an hour', () => {
  it('keeps a sender whose clock runs 0.1% fast within 40 ms of the session clock', () => {
    // The recorder anchors every 5 s by arrival, with up to ±10 ms of network jitter; the
    // sender's media clock gains 1 ms per second on ours (3.6 s over the hour).
    const anchors = [];
    for (let session = 0; session <= 3_600_000; session += 5_000) {
      const jitter = ((session / 5_000) % 5) * 5 - 10;
      anchors.push({ media_ms: session * 1.001, session_ms: session + jitter });
    }
    const drifting = take({ start_ms: 0, end_ms: 3_600_000, anchors });
    let worst = 0;
    for (let session = 0; session <= 3_590_000; session += 1_234) {
      const media = mediaTimeAt(drifting, session);
      expect(media).not.toBeNull();
      // Where the sender's clock truly was at that session time.
      worst = Math.max(worst, Math.abs((media as number) - session * 1.001));
    }
    expect(worst).toBeLessThan(40);
    // Without anchors the same take would be 3.6 s off by the end.
    const naive = take({ start_ms: 0, end_ms: 3_600_000, anchors: [] });
    expect(Math.abs((mediaTimeAt(naive, 3_590_000) as number) - 3_590_000 * 1.001)).toBeGreaterThan(3_000);
  });
});
