import { useEffect, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { api } from '../api';
import { RequireSession } from '../app';
import { InviteLinks } from '../components/InviteLinks';
import { Lazy } from '../components/Lazy';
import { ErrorAlert, isUnavailable, Loading, PageTitle, Unavailable } from '../components/ui';
import { formatWhen } from '../time';
import { ProctoringReview } from '../components/ProctoringReview';
import { Scorecards } from '../components/Scorecards';
import type { ProctoringView } from '../proctoring';
import { type RecordingRow, describeRecording, watchable } from '../recordings';
import type { Interview, InviteLink } from '../types';

function formatLength(ms: number): string {
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

/** While any recording is unfinished its state is fetched again this often. */
const RECORDINGS_REFRESH_MS = 5000;

/**
 * The interview's recordings, for those who may watch them (others are told there are none),
 * each with its real state: recording, saving, waiting for storage, failed with the reason.
 * While one is unfinished the list refreshes itself.
 */
function Recordings({ interviewId }: { interviewId: string }) {
  const [rows, setRows] = useState<RecordingRow[] | null>(null);
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const load = () =>
      api<RecordingRow[]>('GET', `/api/interviews/${encodeURIComponent(interviewId)}/recordings`).then(
        (loaded) => {
          if (stopped) return;
          setRows(loaded);
          if (loaded.some((r) => r.status === 'recording')) timer = setTimeout(load, RECORDINGS_REFRESH_MS);
        },
        () => setRows(null),
      );
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [interviewId]);
  if (!rows || rows.length === 0) return null;
  return (
    <section aria-labelledby="recordings-heading">
      <h2 id="recordings-heading">Recordings</h2>
      <ul class="recordings">
        {rows.map((r) => {
          const state = describeRecording(r);
          return (
            <li key={r.id} data-recording={r.id}>
              {new Date(r.started_at * 1000).toLocaleString()}
              {r.duration_ms !== null && ` · ${formatLength(r.duration_ms)}`} ·{' '}
              <span class={`badge tone-${state.tone}`} role="status">
                {state.label}
              </span>
              {watchable(r) && <a href={`/recordings/${r.id}`}>Watch</a>}
              {state.detail && <p class="hint">{state.detail}</p>}
            </li>
          );
        })}
      </ul>
    </section>
  );
}

/**
 * Settings of the interview at `path`, saved as they change: `saving` says when the server has
 * them ("Saved") and holds the controls while they are on their way, so a reload never shows a
 * setting that did not stick; a refused change is put back. `pick` reads the settings from the
 * resource (the GET and PUT answers).
 */
function useSavedSettings<T>(path: string, pick: (body: Record<string, unknown>) => T) {
  const [value, setValue] = useState<T | null>(null);
  const [saving, setSaving] = useState<'saving' | 'saved' | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<Record<string, unknown>>('GET', path).then((body) => setValue(pick(body)), setError);
  }, [path]);
  const change = (wanted: T) => {
    const before = value;
    setValue(wanted);
    setSaving('saving');
    setError(null);
    api<Record<string, unknown>>('PUT', path, wanted).then(
      (body) => {
        setValue(pick(body));
        setSaving('saved');
      },
      (err) => {
        setValue(before);
        setSaving(null);
        setError(err);
      },
    );
  };
  const status = (
    <span class="muted" role="status">
      {saving === 'saving' ? 'Saving…' : saving === 'saved' ? 'Saved' : ''}
    </span>
  );
  return { value, busy: saving === 'saving', status, error, change };
}

/** "Record automatically": the recording starts once everyone in the room has agreed. */
function AutoRecord({ interviewId }: { interviewId: string }) {
  const { value, busy, status, error, change } = useSavedSettings(
    `/api/interviews/${encodeURIComponent(interviewId)}/recording`,
    (body) => ({ auto: body.auto === true }),
  );
  if (value === null) return <ErrorAlert error={error} />;
  return (
    <div class="field checkbox">
      <label>
        <input type="checkbox" checked={value.auto} disabled={busy}
          onChange={(e) => change({ auto: (e.currentTarget as HTMLInputElement).checked })} />
        Record automatically once everyone in the room has agreed
      </label>
      {status}
      <ErrorAlert error={error} />
    </div>
  );
}

/**
 * Whether the interview is proctored and whether it asks the candidate to share their screen,
 * saved together (so neither undoes the other).
 */
function ProctoringSettings({ interviewId }: { interviewId: string }) {
  const { value, busy, status, error, change } = useSavedSettings(
    `/api/interviews/${encodeURIComponent(interviewId)}/proctoring`,
    (body) => ({ enabled: body.enabled === true, require_screen_share: body.require_screen_share === true }),
  );
  if (value === null) return <ErrorAlert error={error} />;
  return (
    <fieldset class="field checkbox">
      <legend class="visually-hidden">Proctoring</legend>
      <label>
        <input type="checkbox" checked={value.enabled} disabled={busy}
          onChange={(e) => change({ ...value, enabled: (e.currentTarget as HTMLInputElement).checked })} />
        Proctored: the server checks the candidate's camera and phone once they agree
      </label>
      {value.enabled && (
        <label>
          <input type="checkbox" checked={value.require_screen_share} disabled={busy}
            onChange={(e) =>
              change({ ...value, require_screen_share: (e.currentTarget as HTMLInputElement).checked })
            } />
          The candidate shares their screen: mark when sharing stops
        </label>
      )}
      {status}
      <ErrorAlert error={error} />
    </fieldset>
  );
}

/** The interview's proctoring events, for those who may review them. */
function Proctoring({ interview }: { interview: Interview }) {
  const [view, setView] = useState<ProctoringView | null>(null);
  useEffect(() => {
    api<ProctoringView>('GET', `/api/interviews/${encodeURIComponent(interview.id)}/proctoring`).then(
      setView,
      () => undefined,
    );
  }, [interview.id]);
  if (!view || (!view.enabled && view.events.length === 0)) return null;
  const nameOf = (participant: string) =>
    interview.participants.find((p) => p.id === participant)?.display_name ?? 'Someone';
  return <ProctoringReview interview={interview.id} view={view} nameOf={nameOf} onChange={setView} />;
}

const ROLE_LABEL: Record<string, string> = {
  candidate: 'Candidate',
  interviewer: 'Interviewer',
  observer: 'Observer',
  reviewer: 'Reviewer',
};

function InterviewContent({ id }: { id: string }) {
  const { route } = useLocation();
  const [interview, setInterview] = useState<Interview | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [links, setLinks] = useState<InviteLink[]>([]);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<Interview>('GET', `/api/interviews/${encodeURIComponent(id)}`).then(setInterview, setError);
  }, [id]);

  const act = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const cancel = () =>
    act(async () => {
      if (!window.confirm('Cancel this interview? Invite links stop working.')) return;
      setInterview(await api<Interview>('POST', `/api/interviews/${encodeURIComponent(id)}/cancel`, {}));
    });
  const reinvite = (participantId: string) =>
    act(async () => {
      const link = await api<InviteLink>(
        'POST',
        `/api/interviews/${encodeURIComponent(id)}/participants/${encodeURIComponent(participantId)}/invite`,
        {},
      );
      setLinks((current) => [...current.filter((l) => l.participant_id !== participantId), link]);
      setInterview(await api<Interview>('GET', `/api/interviews/${encodeURIComponent(id)}`));
    });

  if (!interview && isUnavailable(error)) {
    return (
      <Unavailable title="This interview isn't available to you"
        audience="An interview is seen only by the people invited to it and by administrators." />
    );
  }
  if (!interview) {
    return (
      <section>
        <ErrorAlert error={error} />
        {!error && <Loading what="the interview" />}
      </section>
    );
  }
  const upcoming = interview.status === 'scheduled' && new Date(interview.ends_at) > new Date();
  return (
    <section class="card">
      <PageTitle>{interview.title}</PageTitle>
      <p class="when">
        {formatWhen(interview.scheduled_start)} · {interview.duration_minutes} minutes
        {interview.time_zone !== Intl.DateTimeFormat().resolvedOptions().timeZone && (
          <span class="muted"> ({formatWhen(interview.scheduled_start, interview.time_zone)})</span>
        )}
      </p>
      {interview.status === 'cancelled' && (
        <p class="badge" role="status">
          Cancelled
        </p>
      )}
      <div class="actions">
        {interview.can_join && (
          <button type="button" onClick={() => route(`/interviews/${interview.id}/room`)}>
            Join
          </button>
        )}
        {interview.can_manage && upcoming && (
          <button type="button" class="danger" disabled={busy} onClick={cancel}>
            Cancel interview
          </button>
        )}
      </div>
      <ErrorAlert error={error} />
      {interview.can_manage && upcoming && (
        <>
          <AutoRecord interviewId={interview.id} />
          <ProctoringSettings interviewId={interview.id} />
        </>
      )}
      <section aria-labelledby="participants-heading">
        <h2 id="participants-heading">Participants</h2>
        <table class="participants">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              {interview.participants.some((p) => p.email) && <th scope="col">Email</th>}
              {interview.can_manage && <th scope="col">Invite</th>}
            </tr>
          </thead>
          <tbody>
            {interview.participants.map((p) => (
              <tr key={p.id}>
                <td>{p.display_name}</td>
                <td>{ROLE_LABEL[p.role] ?? p.role}</td>
                {interview.participants.some((q) => q.email) && <td>{p.email}</td>}
                {interview.can_manage && (
                  <td>
                    {p.role === 'candidate' && (
                      <>
                        <span class="badge">{p.invite ?? 'none'}</span>
                        {upcoming && (
                          <button type="button" class="secondary" disabled={busy}
                            aria-label={`New invite link for ${p.display_name}`} onClick={() => reinvite(p.id)}>
                            New link
                          </button>
                        )}
                      </>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <InviteLinks links={links} />
      <Scorecards interviewId={interview.id} />
      <Recordings interviewId={interview.id} />
      <Lazy load={() => import('../components/CodeReplay').then((m) => m.CodeReplay)} what="the code"
        props={{ interviewId: interview.id }} />
      <Proctoring interview={interview} />
    </section>
  );
}

export function InterviewPage() {
  const { params } = useRoute();
  return (
    <RequireSession>
      <InterviewContent id={params.id} />
    </RequireSession>
  );
}
