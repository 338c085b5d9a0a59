import { useEffect, useMemo, useState } from 'preact/hooks';
import { type Me, api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle } from '../components/ui';
import { isStaff, useSession } from '../session';
import { allZones, formatWhen, localZone } from '../time';
import type { StorageStatus } from '../recordings';
import type { InterviewSummary } from '../types';
import { progressText } from '../scorecards';

interface MyInterviews {
  upcoming: InterviewSummary[];
  past: InterviewSummary[];
}

function InterviewList({ label, items, empty }: { label: string; items: InterviewSummary[]; empty: string }) {
  const headingId = `${label.toLowerCase()}-heading`;
  return (
    <section aria-labelledby={headingId}>
      <h2 id={headingId}>{label}</h2>
      {items.length === 0 ? (
        <p class="muted">{empty}</p>
      ) : (
        <ul class="interviews">
          {items.map((item) => (
            <li key={item.id}>
              <a href={`/interviews/${item.id}`}>{item.title}</a>
              <span class="when">{formatWhen(item.scheduled_start)}</span>
              {item.status === 'cancelled' && <span class="badge">Cancelled</span>}
              {item.scorecards && progressText(item.scorecards) && (
                <span class={item.scorecards.mine_missing ? 'badge tone-warning' : 'badge'}>
                  {progressText(item.scorecards)}
                </span>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** For admins: the recording store is not answering, or recordings need attention. */
function StorageAlert() {
  const [status, setStatus] = useState<StorageStatus | null>(null);
  useEffect(() => {
    api<StorageStatus>('GET', '/api/admin/storage').then(setStatus, () => setStatus(null));
  }, []);
  if (!status || (!status.outage && status.failed.length === 0)) return null;
  return (
    <section class="alert" role="alert" aria-labelledby="storage-heading">
      <h2 id="storage-heading">Recordings need attention</h2>
      {status.outage && (
        <p>
          Recording storage has not answered since {new Date(status.outage.since * 1000).toLocaleString()} (
          {status.outage.error}). {status.waiting.length} recording(s) wait on the server's disk and are uploaded
          when storage is back; check the storage service and the server's free disk space.
        </p>
      )}
      {status.failed.length > 0 && (
        <>
          <p>These recordings could not be finished:</p>
          <ul>
            {status.failed.map((r) => (
              <li key={r.id}>
                <a href={`/interviews/${r.interview_id}`}>{new Date(r.started_at * 1000).toLocaleString()}</a>:{' '}
                {r.failure}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

/** Asks a self-registered account to confirm its address, with a way to get a new link. */
export function ConfirmAddress({ email }: { email: string }) {
  const [said, setSaid] = useState('');
  const [error, setError] = useState<unknown>(null);
  const resend = async () => {
    setError(null);
    try {
      const answer = await api<{ message: string }>('POST', '/api/auth/email/resend');
      setSaid(answer.message);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="notice">
      <p>
        Please confirm your address, <strong>{email}</strong>, with the link we email to it.{' '}
        <button type="button" onClick={() => void resend()}>
          Send me a link
        </button>
      </p>
      <p role="status" aria-live="polite">
        {said}
      </p>
      <ErrorAlert error={error} />
    </div>
  );
}

/** The zone email about interviews is written in, and a way to change it. */
export function EmailZone({ zone }: { zone: string }) {
  const { setMe } = useSession();
  const zones = useMemo(allZones, []);
  const [said, setSaid] = useState('');
  const [error, setError] = useState<unknown>(null);
  const change = async (next: string) => {
    setError(null);
    try {
      setMe(await api<Me>('PUT', '/api/me/time-zone', { time_zone: next }));
      setSaid(`Times in email are now written for ${next}.`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="field">
      <label for="email-zone">Times in email about interviews</label>
      <select id="email-zone" value={zone} onChange={(e) => void change((e.currentTarget as HTMLSelectElement).value)}>
        {(zones.includes(zone) ? zones : [zone, ...zones]).map((z) => (
          <option key={z} value={z}>
            {z}
          </option>
        ))}
      </select>
      <p role="status" aria-live="polite" class="muted">
        {said}
      </p>
      <ErrorAlert error={error} />
    </div>
  );
}

function DashboardContent() {
  const { me } = useSession();
  const [data, setData] = useState<MyInterviews | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<MyInterviews>('GET', '/api/interviews/my').then(setData, setError);
  }, []);
  return (
    <section>
      <div class="page-head">
        <PageTitle>Your interviews</PageTitle>
        {isStaff(me) && (
          <a class="button" href="/interviews/new">
            Schedule an interview
          </a>
        )}
      </div>
      {me?.kind === 'user' && me.role === 'admin' && <StorageAlert />}
      {me?.kind === 'user' && me.email_verified === false && <ConfirmAddress email={me.email} />}
      <ErrorAlert error={error} />
      {!data && !error && <Loading what="interviews" />}
      {data && (
        <>
          <InterviewList label="Upcoming" items={data.upcoming} empty="Nothing scheduled." />
          <InterviewList label="Past" items={data.past} empty="No past interviews yet." />
        </>
      )}
      {me?.kind === 'user' && me.email_verified !== undefined && <EmailZone zone={me.time_zone ?? localZone()} />}
    </section>
  );
}

export function Dashboard() {
  return (
    <RequireSession>
      <DashboardContent />
    </RequireSession>
  );
}
