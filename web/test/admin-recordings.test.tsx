import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import { type AdminRecording, RecordingsTable, sizeOf, storageSummary } from '../src/pages/AdminRecordings';
import { formatBytes } from '../src/recordings';

afterEach(() => {
  document.body.innerHTML = '';
});

const recording = (overrides: Partial<AdminRecording>): AdminRecording => ({
  id: 'r-1',
  interview_id: 'i-1',
  interview_title: 'Backend pairing',
  status: 'complete',
  started_at: 1_796_000_000,
  duration_ms: 3_723_000,
  failure: null,
  size_bytes: 1_234_567,
  stored_so_far: null,
  progress: null,
  ...overrides,
});

describe('admin recordings', () => {
  it('write sizes in decimal units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1_500)).toBe('1.50 kB');
    expect(formatBytes(1_234_567)).toBe('1.23 MB');
    expect(formatBytes(45_600_000_000)).toBe('45.6 GB');
    expect(formatBytes(512_000_000_000)).toBe('512 GB');
  });

  it('say a size is measured, growing or not known', () => {
    expect(sizeOf(recording({}))).toBe('1.23 MB');
    expect(sizeOf(recording({ status: 'recording', size_bytes: null, stored_so_far: 2_000_000 }))).toBe('2.00 MB so far');
    expect(sizeOf(recording({ size_bytes: null }))).toBe('Not measured');
  });

  it('sum up the storage, naming what is not counted', () => {
    const view = { total: 3, stored_bytes: 2_500_000_000, unmeasured: 1, recordings: [] };
    expect(storageSummary(view)).toBe('All 3 recordings kept take 2.50 GB of storage (1 still recording or not measured yet, not counted).');
    expect(storageSummary({ ...view, total: 1, unmeasured: 0 })).toBe('The 1 recording kept takes 2.50 GB of storage.');
  });

  it('list each with its interview, status in words and size; no delete while recording', () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    render(
      <RecordingsTable
        view={{
          total: 2,
          stored_bytes: 1_234_567,
          unmeasured: 1,
          recordings: [
            recording({ id: 'r-2', status: 'recording', size_bytes: null, stored_so_far: 10_000, duration_ms: null }),
            recording({ status: 'failed', failure: 'the store refused the upload' }),
          ],
        }}
        onDelete={() => undefined}
      />,
      root,
    );
    const rows = root.querySelectorAll('tbody tr');
    expect(rows[0]?.textContent).toContain('Backend pairing');
    expect(rows[0]?.textContent).toContain('10.0 kB so far');
    expect(rows[0]?.textContent).not.toContain('Delete');
    expect(rows[1]?.textContent).toContain('Failed');
    expect(rows[1]?.textContent).toContain('the store refused the upload');
    expect(rows[1]?.textContent).toContain('1 h 2 min');
    expect(rows[1]?.textContent).toContain('Delete');
  });
});
