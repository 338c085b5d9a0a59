import { describe, expect, it } from 'vitest';
import { slotNote, wallTimeToInstant, zoneOffsetMs } from '../src/time';

describe('wallTimeToInstant', () => {
  it('converts a summer wall time in Paris (UTC+2)', () => {
    expect(wallTimeToInstant('2026-07-01T09:00', 'Europe/Paris')).toBe('2026-07-01T07:00:00.000Z');
  });

  it('converts a winter wall time in Paris (UTC+1)', () => {
    expect(wallTimeToInstant('2026-12-01T09:00', 'Europe/Paris')).toBe('2026-12-01T08:00:00.000Z');
  });

  it('handles zones west of UTC and across their DST change', () => {
    expect(wallTimeToInstant('2026-03-07T12:00', 'America/New_York')).toBe('2026-03-07T17:00:00.000Z');
    expect(wallTimeToInstant('2026-03-09T12:00', 'America/New_York')).toBe('2026-03-09T16:00:00.000Z');
  });

  it('handles half-hour zones', () => {
    expect(wallTimeToInstant('2026-01-15T10:30', 'Asia/Kolkata')).toBe('2026-01-15T05:00:00.000Z');
  });

  it('refuses malformed input', () => {
    expect(wallTimeToInstant('', 'UTC')).toBeNull();
    expect(wallTimeToInstant('tomorrow at nine', 'UTC')).toBeNull();
  });
});

describe('zoneOffsetMs', () => {
  it('is zero for UTC and one hour for Paris in winter', () => {
    const instant = Date.UTC(2026, 0, 10, 12);
    expect(zoneOffsetMs(instant, 'UTC')).toBe(0);
    expect(zoneOffsetMs(instant, 'Europe/Paris')).toBe(3_600_000);
  });
});

describe('slotNote', () => {
  const start = '2026-12-02T14:00:00Z';
  const end = '2026-12-02T15:00:00Z';
  const at = (iso: string) => Date.parse(iso);
  it('counts down to the start, then to the end, then up past it', () => {
    expect(slotNote(start, end, at('2026-12-02T13:55:30Z'))).toBe('starts in 5 min');
    expect(slotNote(start, end, at('2026-12-02T14:00:00Z'))).toBe('60 min left');
    expect(slotNote(start, end, at('2026-12-02T14:59:01Z'))).toBe('1 min left');
    expect(slotNote(start, end, at('2026-12-02T15:00:00Z'))).toBe('0 min left');
    expect(slotNote(start, end, at('2026-12-02T15:07:59Z'))).toBe('7 min over');
  });
});
