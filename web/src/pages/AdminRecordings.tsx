import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import { type RecordingRow, describeRecording, formatBytes, watchable } from '../recordings';
import { useSession } from '../session';

/** A recording as `GET /api/admin/recordings` lists it. */
export interface AdminRecording extends RecordingRow {
  interview_title: string;
  /** Bytes uploaded so far, for one still recording. */
  stored_so_far: number | null;
}

/** One page of recordings and what all of them take. */
export interface AdminRecordingsView {
  total: number;
  stored_bytes: number;
  unmeasured: number;
  recordings: AdminRecording[];
}

const PAGE = 50;
const STATUSES = ['', 'recording', 'complete', 'interrupted', 'failed'] as const;

const when = (secs: number) => new Date(secs * 1000).toLocaleString();

function length(ms: number | null): string {
  if (ms === null) return '—';
  const secs = Math.round(ms / 1000);
  const h = Math.floor(secs / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s} s` : `${s} s`;
}

/** A recording's size in words: measured, uploaded so far, or not known. */
export function sizeOf(recording: AdminRecording): string {
  if (recording.size_bytes != null) return formatBytes(recording.size_bytes);
  if (recording.stored_so_far != null) return `${formatBytes(recording.stored_so_far)} so far`;
  return 'Not measured';
}

/** What all recordings take, in one sentence. */
export function storageSummary(view: AdminRecordingsView): string {
  const count = view.total === 1 ? 'The 1 recording kept takes' : `All ${view.total} recordings kept take`;
  const pending =
    view.unmeasured > 0 ? ` (${view.unmeasured} still recording or not measured yet, not counted)` : '';
  return `${count} ${formatBytes(view.stored_bytes)} of storage${pending}.`;
}

/** The recordings' table: each with its interview, status in words, length and size. */
export function RecordingsTable({ view, onDelete }: { view: AdminRecordingsView; onDelete?: (r: AdminRecording) => void }) {
  return (
    <table>
      <caption class="visually-hidden">Recordings, newest first</caption>
      <thead>
        <tr>
          <th scope="col">Interview</th>
          <th scope="col">Started</th>
          <th scope="col">Length</th>
          <th scope="col">Status</th>
          <th scope="col">Size</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {view.recordings.length === 0 && (
          <tr>
            <td colSpan={6}>No recording.</td>
          </tr>
        )}
        {view.recordings.map((recording) => {
          const state = describeRecording(recording);
          return (
            <tr key={recording.id} class={recording.status === 'failed' ? 'failed' : undefined}>
              <th scope="row">
                <a href={`/interviews/${recording.interview_id}`}>{recording.interview_title}</a>
              </th>
              <td>{when(recording.started_at)}</td>
              <td>{length(recording.duration_ms)}</td>
              <td>
                <span class={`badge ${state.tone}`}>{state.label}</span>
                {state.detail && <div class="muted">{state.detail}</div>}
              </td>
              <td>{sizeOf(recording)}</td>
              <td>
                {watchable(recording) && <a href={`/recordings/${recording.id}`}>Watch</a>}{' '}
                {recording.status !== 'recording' && onDelete && (
                  <button type="button" class="link" onClick={() => onDelete(recording)}>
                    Delete<span class="visually-hidden"> the recording of {recording.interview_title}</span>
                  </button>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function Recordings() {
  const [status, setStatus] = useState<(typeof STATUSES)[number]>('');
  const [offset, setOffset] = useState(0);
  const [view, setView] = useState<AdminRecordingsView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [reload, setReload] = useState(0);
  const [notice, setNotice] = useState('');
  useEffect(() => {
    let live = true;
    const query = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
    if (status) query.set('status', status);
    api<AdminRecordingsView>('GET', `/api/admin/recordings?${query}`).then(
      (next) => {
        if (!live) return;
        setView(next);
        setError(null);
      },
      (err) => live && setError(err),
    );
    return () => {
      live = false;
    };
  }, [status, offset, reload]);
  if (!view && isUnavailable(error)) {
    return <Unavailable title="This page isn't available to you" audience="Only administrators see all recordings." />;
  }
  const onDelete = async (recording: AdminRecording) => {
    if (!window.confirm(`Delete the recording of "${recording.interview_title}" and all its files? This cannot be undone.`)) {
      return;
    }
    try {
      await api('DELETE', `/api/recordings/${recording.id}`);
      setNotice(`The recording of "${recording.interview_title}" was deleted.`);
      setReload((n) => n + 1);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="card">
      <PageTitle>Recordings</PageTitle>
      <ErrorAlert error={error} />
      <p role="status">{notice}</p>
      <label>
        Status{' '}
        <select
          value={status}
          onChange={(e) => {
            setStatus((e.currentTarget as HTMLSelectElement).value as (typeof STATUSES)[number]);
            setOffset(0);
          }}
        >
          <option value="">All</option>
          <option value="recording">Recording</option>
          <option value="complete">Complete</option>
          <option value="interrupted">Interrupted</option>
          <option value="failed">Failed</option>
        </select>
      </label>
      {!view && !error && <Loading what="the recordings" />}
      {view && (
        <>
          <p>{storageSummary(view)}</p>
          <RecordingsTable view={view} onDelete={onDelete} />
          <nav class="actions" aria-label="Pages">
            <button type="button" class="secondary" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
              Newer
            </button>
            <button
              type="button"
              class="secondary"
              disabled={view.recordings.length < PAGE || (!status && offset + PAGE >= view.total)}
              onClick={() => setOffset(offset + PAGE)}
            >
              Older
            </button>
          </nav>
        </>
      )}
    </section>
  );
}

export function AdminRecordings() {
  const { me } = useSession();
  return (
    <RequireSession>
      {me?.kind === 'user' && me.role === 'admin' ? (
        <Recordings />
      ) : (
        <section class="card narrow">
          <PageTitle>Recordings</PageTitle>
          <p>Only admins can see all recordings.</p>
        </section>
      )}
    </RequireSession>
  );
}
