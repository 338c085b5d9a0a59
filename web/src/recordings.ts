// What a recording's row says to people: its state in words, from the row the server keeps and
// the live progress of the server finishing it.

/** The store has been failing since `since` (unix seconds); `error` is the latest failure. */
export interface StorageOutage {
  since: number;
  failures: number;
  error: string;
}

/** What the server is doing with a recording not yet finished. */
export interface RecordingProgress {
  state: 'recording' | 'finishing';
  /** Set while the recording store does not answer: segments wait on the server's disk. */
  storage: StorageOutage | null;
}

export interface RecordingRow {
  id: string;
  interview_id: string;
  status: 'recording' | 'complete' | 'interrupted' | 'failed';
  started_at: number;
  duration_ms: number | null;
  /** Why it failed, for `failed`. */
  failure: string | null;
  /** Bytes in the object store, measured once it ended. */
  size_bytes?: number | null;
  progress: RecordingProgress | null;
}

/** Storage health for admins: the outage, if any, and recordings that need attention. */
export interface StorageStatus {
  outage: StorageOutage | null;
  waiting: RecordingRow[];
  failed: RecordingRow[];
}

export type Tone = 'ok' | 'busy' | 'warning' | 'danger';

const time = (unixSeconds: number) =>
  new Date(unixSeconds * 1000).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });

/** A row's state as a short label, a longer explanation and a tone for its badge. */
export function describeRecording(row: RecordingRow): { label: string; detail: string; tone: Tone } {
  switch (row.status) {
    case 'complete':
      return { label: 'Complete', detail: '', tone: 'ok' };
    case 'interrupted':
      return { label: 'Interrupted', detail: 'The server stopped during the recording; what was saved is here.', tone: 'warning' };
    case 'failed':
      return { label: 'Failed', detail: row.failure ?? 'The recording could not be finished.', tone: 'danger' };
  }
  const storage = row.progress?.storage;
  const outage = storage
    ? `Storage has not answered since ${time(storage.since)} (${storage.error}). Nothing is lost: the server keeps ` +
      'the recording on its disk and retries until storage is back.'
    : '';
  switch (row.progress?.state) {
    case 'recording':
      return { label: 'Recording…', detail: outage, tone: storage ? 'warning' : 'busy' };
    case 'finishing':
      return storage
        ? { label: 'Waiting for storage, retrying', detail: outage, tone: 'warning' }
        : { label: 'Saving…', detail: 'The recording has stopped and is being joined and uploaded.', tone: 'busy' };
    default:
      return {
        label: 'Not finished',
        detail: 'No server is finishing this recording now; it will be finished when the server that made it restarts.',
        tone: 'warning',
      };
  }
}

/** Whether a recording can be watched: it was finished, completely or up to an interruption. */
export function watchable(row: RecordingRow): boolean {
  return row.status === 'complete' || row.status === 'interrupted';
}

/** A size in bytes for people: "950 B", "1.5 MB", "2.30 GB" (decimal units, as storage bills). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  if (unit === 0) return `${value} B`;
  return `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}
