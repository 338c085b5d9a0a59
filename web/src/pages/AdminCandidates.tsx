import { useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, PageTitle } from '../components/ui';
import { useSession } from '../session';

/** What `POST /api/admin/candidates/erase` removed. */
export interface Erased {
  interviews: number;
  recordings: number;
  proctoring_events: number;
  scorecards_emptied: number;
  account_deleted: boolean;
}

/** An erasure's result in words. */
export function erasedText(erased: Erased): string {
  const parts = [
    `${erased.interviews} ${erased.interviews === 1 ? 'interview' : 'interviews'} cleared`,
    `${erased.recordings} ${erased.recordings === 1 ? 'recording' : 'recordings'} deleted`,
    `${erased.proctoring_events} proctoring ${erased.proctoring_events === 1 ? 'event' : 'events'} deleted`,
    `${erased.scorecards_emptied} ${erased.scorecards_emptied === 1 ? 'scorecard' : 'scorecards'} kept with ratings only`,
  ];
  if (erased.account_deleted) parts.push('the candidate account deleted');
  return `Erased: ${parts.join(', ')}.`;
}

/** Offers `document` as a JSON file named after `email`. */
function download(email: string, document: unknown) {
  const blob = new Blob([JSON.stringify(document, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const link = window.document.createElement('a');
  link.href = url;
  link.download = `sightline-data-${email.replace(/[^a-z0-9@._-]/gi, '_')}.json`;
  link.click();
  URL.revokeObjectURL(url);
}

function Candidates() {
  const [email, setEmail] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [status, setStatus] = useState('');
  const [busy, setBusy] = useState(false);
  const run = async (what: 'export' | 'erase') => {
    const address = email.trim();
    if (!address) return;
    if (
      what === 'erase' &&
      !window.confirm(
        `Erase everything Sightline holds about ${address}? Their recordings, proctoring evidence, code and account are deleted for good.`,
      )
    ) {
      return;
    }
    setBusy(true);
    setError(null);
    setStatus('');
    try {
      if (what === 'export') {
        const document = await api<unknown>('POST', '/api/admin/candidates/export', { email: address });
        download(address, document);
        setStatus(`The data of ${address} was exported.`);
      } else {
        const erased = await api<Erased>('POST', '/api/admin/candidates/erase', { email: address });
        setStatus(erasedText(erased));
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="card narrow">
      <PageTitle>Candidate data</PageTitle>
      <p>
        Export everything Sightline holds about a candidate as one file, or erase it: recordings, proctoring evidence,
        the interview's code, invites, phone pairings and account. Scorecards keep their ratings only. The audit log
        records that it happened, not the address.
      </p>
      <ErrorAlert error={error} />
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run('export');
        }}
      >
        <label>
          Candidate's email
          <input type="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <button type="submit" disabled={busy}>
          Export their data
        </button>{' '}
        <button type="button" class="danger" disabled={busy} onClick={() => void run('erase')}>
          Erase their data
        </button>
      </form>
      <p role="status" aria-live="polite">
        {status}
      </p>
    </section>
  );
}

export function AdminCandidates() {
  const { me } = useSession();
  return (
    <RequireSession>
      {me?.kind === 'user' && me.role === 'admin' ? (
        <Candidates />
      ) : (
        <section class="card narrow">
          <PageTitle>Candidate data</PageTitle>
          <p>Only admins can export or erase a candidate's data.</p>
        </section>
      )}
    </RequireSession>
  );
}
