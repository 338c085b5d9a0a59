import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import { useSession } from '../session';

/** One message, as `GET /api/admin/outbox` lists it (never its content). */
export interface OutboxEntry {
  id: string;
  kind: string;
  recipient: string;
  subject: string;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  sent_at: number | null;
  failed_at: number | null;
  last_error: string | null;
}

/** The email outbox. */
export interface OutboxView {
  enabled: boolean;
  waiting: number;
  failed: number;
  messages: OutboxEntry[];
}

const when = (secs: number) => new Date(secs * 1000).toLocaleString();

/** Where a message stands, in words (never by colour alone). */
export function messageState(message: OutboxEntry): string {
  if (message.sent_at !== null) return `Sent ${when(message.sent_at)}`;
  if (message.failed_at !== null) return `Failed after ${message.attempts} attempts`;
  if (message.attempts === 0) return 'Waiting to be sent';
  return `Retrying (attempt ${message.attempts + 1} at ${when(message.next_attempt_at)})`;
}

/** What the outbox holds: waiting and failed messages first, with the last error of each. */
export function OutboxTable({ view }: { view: OutboxView }) {
  return (
    <>
      {!view.enabled && (
        <p class="notice" role="status">
          This server sends no email (<code>[email] smtp_url</code> is not set): people get links to copy instead.
        </p>
      )}
      <p>
        {view.waiting} waiting, {view.failed} failed.
      </p>
      <table>
        <caption class="visually-hidden">Email messages, unsent ones first</caption>
        <thead>
          <tr>
            <th scope="col">Message</th>
            <th scope="col">To</th>
            <th scope="col">Queued</th>
            <th scope="col">State</th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {view.messages.length === 0 && (
            <tr>
              <td colSpan={5}>No message yet.</td>
            </tr>
          )}
          {view.messages.map((message) => (
            <tr key={message.id} class={message.failed_at !== null ? 'failed' : undefined}>
              <th scope="row">{message.subject}</th>
              <td>{message.recipient}</td>
              <td>{when(message.created_at)}</td>
              <td>{messageState(message)}</td>
              <td>{message.last_error ?? <span class="muted">None</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Outbox() {
  const [view, setView] = useState<OutboxView | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    api<OutboxView>('GET', '/api/admin/outbox').then(
      (next) => live && setView(next),
      (err) => live && setError(err),
    );
    return () => {
      live = false;
    };
  }, []);
  if (!view && isUnavailable(error)) {
    return <Unavailable title="This page isn't available to you" audience="Only administrators see the outbox." />;
  }
  return (
    <section class="card">
      <PageTitle>Email outbox</PageTitle>
      <ErrorAlert error={error} />
      {!view && !error && <Loading what="the outbox" />}
      {view && <OutboxTable view={view} />}
    </section>
  );
}

export function AdminOutbox() {
  const { me } = useSession();
  return (
    <RequireSession>
      {me?.kind === 'user' && me.role === 'admin' ? (
        <Outbox />
      ) : (
        <section class="card narrow">
          <PageTitle>Email outbox</PageTitle>
          <p>Only admins can see the outbox.</p>
        </section>
      )}
    </RequireSession>
  );
}
