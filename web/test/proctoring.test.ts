import { describe, expect, it } from 'vitest';
import { hintText, kindExplanation, kindLabel, snapshotPath, spanText } from '../src/proctoring';

describe('proctoring words', () => {
  it('names every kind neutrally, and unknown kinds readably', () => {
    expect(kindLabel('face_absent')).toBe('No face visible');
    expect(kindLabel('multiple_faces')).toBe('More than one face');
    expect(kindLabel('some_new_check')).toBe('some new check');
    // "Checks off" is the detector's limit, said as such: never the candidate's fault.
    expect(kindExplanation('checks_unavailable')).toMatch(/not something the candidate did/);
  });

  it('says how long an event lasted, or that it still lasts', () => {
    expect(spanText(1_000, null)).toBe('ongoing');
    expect(spanText(1_000, 13_400)).toBe('12 s');
    expect(spanText(0, 65_000)).toBe('1 min 5 s');
    expect(spanText(5_000, 1_000)).toBe('0 s');
  });

  it('escapes ids in snapshot addresses', () => {
    expect(snapshotPath('a/b', 'e 1')).toBe('/api/interviews/a%2Fb/proctoring/e%201/snapshots/0');
  });
});

describe('hints', () => {
  it('speak about the setup, never about cheating', () => {
    for (const hint of ['face_not_visible', 'camera_dark', 'camera_frozen', 'video_stopped', 'phone_moved'] as const) {
      expect(hintText(hint)).not.toMatch(/cheat|suspicious|violation|flag/i);
    }
  });
});
