import { describe, expect, it } from 'vitest';
import {
  type Manifest,
  SYNC_TOLERANCE_MS,
  type Take,
  clock,
  correction,
  mediaTimeAt,
  needsSeek,
  sessionLength,
} from '../src/playback';

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

describe('a playing element that strays', () => {
  it('is left alone within 20 ms, caught up by its rate up to a second, seeked beyond', () => {
    expect(correction(5_010, 5_000, 1)).toEqual({ rate: 1 });
    expect(correction(5_060, 5_000, 1)).toEqual({ rate: 0.9 });
    expect(correction(4_975, 5_000, 1)).toEqual({ rate: 1.05 });
    expect(correction(4_700, 5_000, 2)).toEqual({ rate: 2.2 });
    expect(correction(6_200, 5_000, 1)).toEqual({ seek: 5_000 });
    // After a person's seek, anything past the tolerance is put in place at once.
    expect(correction(5_150, 5_000, 1, SYNC_TOLERANCE_MS)).toEqual({ seek: 5_000 });
  });

  it('converges: six elements 150 ms apart end within 40 ms of each other in two seconds', () => {
    // Every 200 ms the player checks each element; between checks an element plays at its rate
    // (and a busy machine's element loses up to 5 ms a tick).
    let clock = 10_000;
    const elements = [-75, -40, 0, 30, 60, 75].map((off) => ({ at: clock + off, rate: 1 }));
    for (let tick = 0; tick < 10; tick++) {
      for (const [i, e] of elements.entries()) {
        const fix = correction(e.at, clock, 1);
        if ('seek' in fix) e.at = fix.seek;
        else e.rate = fix.rate;
        e.at += 200 * e.rate - (i % 2) * 5;
      }
      clock += 200;
    }
    const ats = elements.map((e) => e.at - clock);
    expect(Math.max(...ats) - Math.min(...ats)).toBeLessThanOrEqual(40);
  });
});
