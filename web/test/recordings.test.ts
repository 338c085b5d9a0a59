import { describe, expect, it } from 'vitest';
import { type RecordingRow, describeRecording, watchable } from '../src/recordings';

const row = (change: Partial<RecordingRow>): RecordingRow => ({
  id: 'r1',
  interview_id: 'i1',
  status: 'recording',
  started_at: 1_800_000_000,
  duration_ms: null,
  failure: null,
  progress: null,
  ...change,
});
const outage = { since: 1_800_000_100, failures: 4, error: 'connection refused' };

describe('describeRecording', () => {
  it('says what the server is doing with an unfinished recording', () => {
    expect(describeRecording(row({ progress: { state: 'recording', storage: null } })).label).toBe('Recording…');
    expect(describeRecording(row({ progress: { state: 'finishing', storage: null } })).label).toBe('Saving…');
    const waiting = describeRecording(row({ progress: { state: 'finishing', storage: outage } }));
    expect(waiting.label).toBe('Waiting for storage, retrying');
    expect(waiting.detail).toContain('connection refused');
    expect(waiting.tone).toBe('warning');
    // Still recording while storage is away: it says so, and that nothing is lost.
    const live = describeRecording(row({ progress: { state: 'recording', storage: outage } }));
    expect(live.label).toBe('Recording…');
    expect(live.detail).toContain('Nothing is lost');
    expect(describeRecording(row({})).label).toBe('Not finished');
  });

  it('gives a failure its reason, and only finished recordings can be watched', () => {
    const failed = row({ status: 'failed', failure: 'the spool disk is full' });
    expect(describeRecording(failed)).toMatchObject({ label: 'Failed', detail: 'the spool disk is full', tone: 'danger' });
    expect(watchable(failed)).toBe(false);
    expect(watchable(row({ status: 'complete' }))).toBe(true);
    expect(watchable(row({ status: 'interrupted' }))).toBe(true);
    expect(watchable(row({ progress: { state: 'finishing', storage: null } }))).toBe(false);
  });
});
