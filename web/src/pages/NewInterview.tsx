import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, api, type InterviewRole } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Field, PageTitle } from '../components/ui';
import { InviteLinks } from '../components/InviteLinks';
import { isStaff, useSession } from '../session';
import { allZones, localZone, wallTimeToInstant } from '../time';
import type { Interview, InviteLink } from '../types';

interface Row {
  key: number;
  email: string;
  name: string;
  role: InterviewRole;
  /** A candidate's own zone for the email they get; '' for the interview's. */
  zone: string;
}

const ROLES: { value: InterviewRole; label: string }[] = [
  { value: 'candidate', label: 'Candidate' },
  { value: 'interviewer', label: 'Interviewer' },
  { value: 'observer', label: 'Observer' },
  { value: 'reviewer', label: 'Reviewer (hidden)' },
];

/** A question of the bank, as far as scheduling needs it. */
interface BankQuestion {
  id: string;
  title: string;
  difficulty: string;
}

let nextKey = 1;

function NewInterviewForm() {
  const [title, setTitle] = useState('');
  const [when, setWhen] = useState('');
  const [duration, setDuration] = useState('60');
  const [zone, setZone] = useState(localZone());
  const [rows, setRows] = useState<Row[]>([{ key: nextKey++, email: '', name: '', role: 'candidate', zone: '' }]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<{ interview: Interview; invites: InviteLink[] } | null>(null);
  const zones = useMemo(allZones, []);
  const [bank, setBank] = useState<BankQuestion[]>([]);
  const [picked, setPicked] = useState<string[]>([]);
  useEffect(() => {
    api<BankQuestion[]>('GET', '/api/questions').then(setBank, () => setBank([]));
  }, []);

  const update = (key: number, change: Partial<Row>) =>
    setRows((current) => current.map((row) => (row.key === key ? { ...row, ...change } : row)));

  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    const start = wallTimeToInstant(when, zone);
    if (!start) {
      setError(new ApiError(422, 'validation_failed', 'Choose a date and time.', [
        { field: 'scheduled_start', message: 'choose a date and time' },
      ]));
      return;
    }
    setBusy(true);
    try {
      const result = await api<{ interview: Interview; invites: InviteLink[] }>('POST', '/api/interviews', {
        title,
        scheduled_start: start,
        duration_minutes: Number(duration),
        time_zone: zone,
        participants: rows.map((row) => ({
          email: row.email,
          role: row.role,
          ...(row.name.trim() ? { display_name: row.name } : {}),
          ...(row.role === 'candidate' && row.zone ? { time_zone: row.zone } : {}),
        })),
        question_ids: picked,
      });
      setCreated(result);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (field: string) => (error instanceof ApiError ? error.fieldMessage(field) : undefined);

  if (created) {
    return (
      <section class="card">
        <PageTitle>Interview scheduled</PageTitle>
        <p>
          <a href={`/interviews/${created.interview.id}`}>{created.interview.title}</a> is on the calendar.
        </p>
        <InviteLinks links={created.invites} />
      </section>
    );
  }

  return (
    <section class="card">
      <PageTitle>Schedule an interview</PageTitle>
      <form onSubmit={submit} noValidate>
        <Field id="title" label="Title" required value={title} onInput={setTitle} error={fieldError('title')} />
        <div class="row">
          <Field id="scheduled_start" label="Date and time" type="datetime-local" required value={when}
            onInput={setWhen} error={fieldError('scheduled_start')} />
          <Field id="duration_minutes" label="Duration (minutes)" type="number" min="5" max="480" required
            value={duration} onInput={setDuration} error={fieldError('duration_minutes')} />
          <div class="field">
            <label for="time_zone">Time zone</label>
            <select id="time_zone" value={zone} onChange={(e) => setZone((e.currentTarget as HTMLSelectElement).value)}>
              {zones.map((z) => (
                <option key={z} value={z}>
                  {z}
                </option>
              ))}
            </select>
            {fieldError('time_zone') && <p class="field-error">{fieldError('time_zone')}</p>}
          </div>
        </div>
        <fieldset>
          <legend>Participants (you join as interviewer)</legend>
          {rows.map((row, i) => (
            <div class="row participant" key={row.key}>
              <Field id={`participant-${i}-email`} label={`Participant ${i + 1} email`} type="email" required
                value={row.email} onInput={(v) => update(row.key, { email: v })}
                error={fieldError(`participants[${i}].email`)} />
              <Field id={`participant-${i}-name`} label={`Participant ${i + 1} name`} value={row.name}
                hint="Optional" onInput={(v) => update(row.key, { name: v })}
                error={fieldError(`participants[${i}].display_name`)} />
              <div class="field">
                <label for={`participant-${i}-role`}>{`Participant ${i + 1} role`}</label>
                <select id={`participant-${i}-role`} value={row.role}
                  onChange={(e) => update(row.key, { role: (e.currentTarget as HTMLSelectElement).value as InterviewRole })}>
                  {ROLES.map((r) => (
                    <option key={r.value} value={r.value}>
                      {r.label}
                    </option>
                  ))}
                </select>
              </div>
              {row.role === 'candidate' && (
                <div class="field">
                  <label for={`participant-${i}-zone`}>{`Participant ${i + 1} time zone`}</label>
                  <select id={`participant-${i}-zone`} value={row.zone} aria-describedby={`participant-${i}-zone-hint`}
                    onChange={(e) => update(row.key, { zone: (e.currentTarget as HTMLSelectElement).value })}>
                    <option value="">Same as the interview</option>
                    {zones.map((z) => (
                      <option key={z} value={z}>
                        {z}
                      </option>
                    ))}
                  </select>
                  <p class="hint" id={`participant-${i}-zone-hint`}>
                    For the times in the email they get
                  </p>
                  {fieldError(`participants[${i}].time_zone`) && (
                    <p class="field-error">{fieldError(`participants[${i}].time_zone`)}</p>
                  )}
                </div>
              )}
              {rows.length > 1 && (
                <button type="button" class="secondary" aria-label={`Remove participant ${i + 1}`}
                  onClick={() => setRows((current) => current.filter((r) => r.key !== row.key))}>
                  Remove
                </button>
              )}
            </div>
          ))}
          <button type="button" class="secondary"
            onClick={() => setRows((current) => [...current, { key: nextKey++, email: '', name: '', role: 'candidate', zone: '' }])}>
            Add participant
          </button>
          {fieldError('participants') && <p class="field-error">{fieldError('participants')}</p>}
        </fieldset>
        {bank.length > 0 && (
          <fieldset>
            <legend>Questions (hidden from the candidate until you reveal them in the room)</legend>
            <ul class="question-picks">
              {bank.map((q) => (
                <li key={q.id}>
                  <label>
                    <input type="checkbox" checked={picked.includes(q.id)}
                      onChange={(e) => {
                        const on = (e.currentTarget as HTMLInputElement).checked;
                        setPicked((current) => (on ? [...current, q.id] : current.filter((id) => id !== q.id)));
                      }} />
                    {q.title} <span class="badge">{q.difficulty}</span>
                  </label>
                </li>
              ))}
            </ul>
          </fieldset>
        )}
        <ErrorAlert error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Scheduling…' : 'Schedule interview'}
        </button>
      </form>
    </section>
  );
}

export function NewInterview() {
  const { me } = useSession();
  return (
    <RequireSession>
      {isStaff(me) ? (
        <NewInterviewForm />
      ) : (
        <section class="card narrow">
          <PageTitle>Schedule an interview</PageTitle>
          <p role="alert">Only interviewers and admins can schedule interviews.</p>
        </section>
      )}
    </RequireSession>
  );
}
