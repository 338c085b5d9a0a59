import { useCallback, useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import { useSession } from '../session';

/** A registered endpoint, as `GET /api/admin/webhooks` lists it. */
export interface WebhookEndpoint {
  id: string;
  url: string;
  events: string[];
  created_at: string;
}

/** One event on its way to one endpoint (never its body). */
export interface WebhookDelivery {
  id: string;
  endpoint_id: string;
  event_id: string;
  event: string;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  delivered_at: number | null;
  failed_at: number | null;
  last_status: number | null;
  last_error: string | null;
}

/** The endpoints and their deliveries. */
export interface WebhooksView {
  events: string[];
  endpoints: WebhookEndpoint[];
  waiting: number;
  failed: number;
  deliveries: WebhookDelivery[];
}

interface WithSecret {
  endpoint: WebhookEndpoint;
  secret: string;
}

const when = (secs: number) => new Date(secs * 1000).toLocaleString();

/** Where a delivery stands, in words (never by colour alone). */
export function deliveryState(delivery: WebhookDelivery): string {
  if (delivery.delivered_at !== null) return `Delivered ${when(delivery.delivered_at)}`;
  if (delivery.failed_at !== null) return `Failed after ${delivery.attempts} attempts`;
  if (delivery.attempts === 0) return 'Waiting to be sent';
  return `Retrying (attempt ${delivery.attempts + 1} at ${when(delivery.next_attempt_at)})`;
}

/** The deliveries, undelivered ones first, with the last answer or error of each. */
export function DeliveriesTable({ view }: { view: WebhooksView }) {
  const urlOf = (id: string) => view.endpoints.find((e) => e.id === id)?.url ?? id;
  return (
    <>
      <p>
        {view.waiting} waiting, {view.failed} failed.
      </p>
      <table>
        <caption class="visually-hidden">Webhook deliveries, undelivered ones first</caption>
        <thead>
          <tr>
            <th scope="col">Event</th>
            <th scope="col">Endpoint</th>
            <th scope="col">Happened</th>
            <th scope="col">State</th>
            <th scope="col">Last answer</th>
          </tr>
        </thead>
        <tbody>
          {view.deliveries.length === 0 && (
            <tr>
              <td colSpan={5}>No delivery yet.</td>
            </tr>
          )}
          {view.deliveries.map((delivery) => (
            <tr key={delivery.id} class={delivery.failed_at !== null ? 'failed' : undefined}>
              <th scope="row">{delivery.event}</th>
              <td>{urlOf(delivery.endpoint_id)}</td>
              <td>{when(delivery.created_at)}</td>
              <td>{deliveryState(delivery)}</td>
              <td>
                {delivery.last_error ??
                  (delivery.last_status !== null ? `HTTP ${delivery.last_status}` : <span class="muted">None</span>)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** Shows a signing secret once, where the admin copies it to the receiver. */
function SecretShown({ shown, onDone }: { shown: WithSecret; onDone: () => void }) {
  return (
    <div class="notice" role="status">
      <p>
        Signing secret for <strong>{shown.endpoint.url}</strong>. Copy it to the receiver now: it verifies{' '}
        <code>Sightline-Signature</code> (HMAC-SHA256 of <code>timestamp.body</code>).
      </p>
      <p>
        <label>
          Secret <input readOnly value={shown.secret} onFocus={(e) => e.currentTarget.select()} />
        </label>
      </p>
      <button type="button" onClick={onDone}>
        Done
      </button>
    </div>
  );
}

function AddEndpoint({ events, onAdded }: { events: string[]; onAdded: (added: WithSecret) => void }) {
  const [url, setUrl] = useState('');
  const [wanted, setWanted] = useState<string[]>(events);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const toggle = (event: string, on: boolean) =>
    setWanted((now) => (on ? [...now.filter((e) => e !== event), event] : now.filter((e) => e !== event)));
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const added = await api<WithSecret>('POST', '/api/admin/webhooks', { url: url.trim(), events: wanted });
      setUrl('');
      onAdded(added);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} aria-labelledby="add-endpoint">
      <h2 id="add-endpoint">Add an endpoint</h2>
      <ErrorAlert error={error} />
      <label>
        URL (https://, or http:// on this machine)
        <input type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
      </label>
      <fieldset>
        <legend>Events</legend>
        {events.map((event) => (
          <label key={event}>
            <input
              type="checkbox"
              checked={wanted.includes(event)}
              onChange={(e) => toggle(event, e.currentTarget.checked)}
            />{' '}
            {event}
          </label>
        ))}
      </fieldset>
      <button type="submit" disabled={busy || wanted.length === 0}>
        Add endpoint
      </button>
    </form>
  );
}

function Webhooks() {
  const [view, setView] = useState<WebhooksView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [shown, setShown] = useState<WithSecret | null>(null);
  const load = useCallback(() => {
    api<WebhooksView>('GET', '/api/admin/webhooks').then(setView, setError);
  }, []);
  useEffect(load, [load]);
  const act = async (method: string, path: string) => {
    setError(null);
    try {
      const answer = await api<WithSecret | undefined>(method, path);
      if (answer) setShown(answer);
      load();
    } catch (err) {
      setError(err);
    }
  };
  if (!view && isUnavailable(error)) {
    return <Unavailable title="This page isn't available to you" audience="Only administrators manage webhooks." />;
  }
  return (
    <section class="card">
      <PageTitle>Webhooks</PageTitle>
      <ErrorAlert error={error} />
      {shown && <SecretShown shown={shown} onDone={() => setShown(null)} />}
      {!view && !error && <Loading what="the webhooks" />}
      {view && (
        <>
          <table>
            <caption class="visually-hidden">Registered endpoints</caption>
            <thead>
              <tr>
                <th scope="col">Endpoint</th>
                <th scope="col">Events</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {view.endpoints.length === 0 && (
                <tr>
                  <td colSpan={3}>No endpoint yet.</td>
                </tr>
              )}
              {view.endpoints.map((endpoint) => (
                <tr key={endpoint.id}>
                  <th scope="row">{endpoint.url}</th>
                  <td>{endpoint.events.join(', ')}</td>
                  <td>
                    <button
                      type="button"
                      onClick={() => act('POST', `/api/admin/webhooks/${endpoint.id}/rotate-secret`)}
                      aria-label={`New signing secret for ${endpoint.url}`}
                    >
                      New secret
                    </button>{' '}
                    <button
                      type="button"
                      onClick={() => {
                        if (window.confirm(`Remove ${endpoint.url} and what still waits for it?`)) {
                          void act('DELETE', `/api/admin/webhooks/${endpoint.id}`);
                        }
                      }}
                      aria-label={`Remove ${endpoint.url}`}
                    >
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <AddEndpoint
            events={view.events}
            onAdded={(added) => {
              setShown(added);
              load();
            }}
          />
          <h2>Deliveries</h2>
          <DeliveriesTable view={view} />
        </>
      )}
    </section>
  );
}

export function AdminWebhooks() {
  const { me } = useSession();
  return (
    <RequireSession>
      {me?.kind === 'user' && me.role === 'admin' ? (
        <Webhooks />
      ) : (
        <section class="card narrow">
          <PageTitle>Webhooks</PageTitle>
          <p>Only admins can manage webhooks.</p>
        </section>
      )}
    </RequireSession>
  );
}
