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
