import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import { useSession } from '../session';

/** One entry of `GET /api/admin/audit`. */
export interface AuditEntry {
  id: string;
  actor: string;
  action: string;
  target: string;
  details: string;
  created_at: number;
}

/** What the entries are narrowed to. */
export interface AuditFilter {
  action: string;
  actor: string;
  target: string;
}

/** The query string for `filter` (empty parts left out). */
export function auditQuery(filter: AuditFilter): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) {
    if (value.trim()) params.set(key, value.trim());
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

function Audit() {
  const [filter, setFilter] = useState<AuditFilter>({ action: '', actor: '', target: '' });
  const [applied, setApplied] = useState<AuditFilter>(filter);
  const [entries, setEntries] = useState<AuditEntry[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setEntries(null);
    api<AuditEntry[]>('GET', `/api/admin/audit${auditQuery(applied)}`).then(
      (found) => {
        setEntries(found);
        setError(null);
      },
      setError,
    );
  }, [applied]);
  if (!entries && isUnavailable(error)) {
    return <Unavailable title="This page isn't available to you" audience="Only administrators see the audit log." />;
  }
  const field = (key: keyof AuditFilter, label: string) => (
    <label>
      {label}
      <input value={filter[key]} onInput={(e) => setFilter({ ...filter, [key]: e.currentTarget.value })} />
    </label>
  );
  return (
    <section class="card">
      <PageTitle>Audit log</PageTitle>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(filter);
        }}
      >
        {field('action', 'Action (e.g. user.deactivated)')}
        {field('actor', 'Done by (user id, or cli)')}
        {field('target', 'Done to (id)')}
        <button type="submit">Show</button>
      </form>
      <ErrorAlert error={error} />
      {!entries && !error && <Loading what="the audit log" />}
      {entries && (
        <table>
          <caption class="visually-hidden">Audit entries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Done by</th>
              <th scope="col">Done to</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {entries.length === 0 && (
              <tr>
                <td colSpan={5}>No entry matches.</td>
              </tr>
            )}
            {entries.map((entry) => (
              <tr key={entry.id}>
                <td>{new Date(entry.created_at * 1000).toLocaleString()}</td>
                <th scope="row">{entry.action}</th>
                <td>{entry.actor}</td>
                <td>{entry.target}</td>
                <td>
                  <code>{entry.details}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function AdminAudit() {
  const { me } = useSession();
  return (
    <RequireSession>
      {me?.kind === 'user' && me.role === 'admin' ? (
        <Audit />
      ) : (
        <section class="card narrow">
          <PageTitle>Audit log</PageTitle>
          <p>Only admins can see the audit log.</p>
        </section>
      )}
    </RequireSession>
  );
}
