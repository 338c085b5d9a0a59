import { useCallback, useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import { useSession } from '../session';

/** Someone in a room now, as `GET /api/admin/rooms` lists them. */
export interface LiveParticipant {
  identity: string;
  name: string;
  role: string;
  reconnecting: boolean;
  connection: string | null;
  phone_of: string | null;
}

/** A room that is up. */
export interface LiveRoom {
  interview_id: string;
  title: string | null;
  node: string | null;
  /** `null` when the room did not answer in time. */
  participants: LiveParticipant[] | null;
  hidden: number;
  tracks: number;
}

/** Every room up now. */
export interface LiveRooms {
  rooms: LiveRoom[];
  unanswered_nodes: string[];
}

/** How often the list is read again. */
const REFRESH_MS = 5_000;

/** A participant's state in words (never by colour alone). */
export function participantState(participant: LiveParticipant): string {
  if (participant.reconnecting) return 'Reconnecting';
  if (participant.connection === null) return 'Connected';
  return `Connected, connection ${participant.connection}`;
}

function who(participant: LiveParticipant): string {
  return participant.phone_of !== null ? `${participant.name} (phone)` : participant.name;
}

/** The rooms and who is in each. */
export function RoomsTable({ live, onClose }: { live: LiveRooms; onClose: (room: LiveRoom) => void }) {
  return (
    <>
      {live.unanswered_nodes.length > 0 && (
        <p class="notice" role="status">
          Not listed: the rooms of {live.unanswered_nodes.join(', ')} (the node did not answer).
        </p>
      )}
      <p>{live.rooms.length === 1 ? '1 room is up.' : `${live.rooms.length} rooms are up.`}</p>
      <table>
        <caption class="visually-hidden">Rooms that are up now</caption>
        <thead>
          <tr>
            <th scope="col">Interview</th>
            <th scope="col">People</th>
            <th scope="col">Also</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {live.rooms.length === 0 && (
            <tr>
              <td colSpan={4}>No room is up.</td>
            </tr>
          )}
          {live.rooms.map((room) => (
            <tr key={room.interview_id}>
              <th scope="row">
                <a href={`/interviews/${room.interview_id}`}>{room.title ?? room.interview_id}</a>
                {room.node !== null && <span class="muted"> on {room.node}</span>}
              </th>
              <td>
                {room.participants === null ? (
                  <span class="muted">The room did not answer in time</span>
                ) : room.participants.length === 0 ? (
                  <span class="muted">Nobody</span>
                ) : (
                  <ul class="plain">
                    {room.participants.map((p) => (
                      <li key={p.identity}>
                        {who(p)}, {p.role}: {participantState(p)}
                      </li>
                    ))}
                  </ul>
                )}
              </td>
              <td>
                {room.tracks} tracks, {room.hidden} hidden (reviewers watching, recorder, proctor)
              </td>
              <td>
                <button
                  type="button"
                  onClick={() => onClose(room)}
                  aria-label={`Close the room of ${room.title ?? room.interview_id}`}
                >
                  Close room
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Rooms() {
  const [live, setLive] = useState<LiveRooms | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [closed, setClosed] = useState<string | null>(null);
  const load = useCallback(() => {
    api<LiveRooms>('GET', '/api/admin/rooms').then(
      (next) => {
        setLive(next);
        setError(null);
      },
      setError,
    );
  }, []);
  useEffect(() => {
    // The next read is asked for once the last one answered: slow answers never pile up.
    let timer = 0;
    let active = true;
    const next = () => {
      api<LiveRooms>('GET', '/api/admin/rooms')
        .then(
          (rooms) => {
            if (!active) return;
            setLive(rooms);
            setError(null);
          },
          (err) => active && setError(err),
        )
        .finally(() => {
          if (active) timer = window.setTimeout(next, REFRESH_MS);
        });
    };
    next();
    return () => {
      active = false;
      window.clearTimeout(timer);
    };
  }, []);
  const close = async (room: LiveRoom) => {
    const name = room.title ?? room.interview_id;
    if (!window.confirm(`Close the room of "${name}"? Everyone in it leaves now; they can join again.`)) return;
    try {
      await api<void>('POST', `/api/admin/rooms/${room.interview_id}/close`);
      setClosed(`The room of "${name}" was closed.`);
      load();
    } catch (err) {
      setError(err);
    }
  };
  if (!live && isUnavailable(error)) {
    return <Unavailable title="This page isn't available to you" audience="Only administrators see the live rooms." />;
  }
  return (
    <section class="card">
      <PageTitle>Live rooms</PageTitle>
      <ErrorAlert error={error} />
      <p class="visually-hidden" role="status" aria-live="polite">
        {closed ?? ''}
      </p>
      {closed && <p>{closed}</p>}
      {!live && !error && <Loading what="the rooms" />}
      {live && <RoomsTable live={live} onClose={close} />}
    </section>
  );
}

export function AdminRooms() {
  const { me } = useSession();
  return (
    <RequireSession>
      {me?.kind === 'user' && me.role === 'admin' ? (
        <Rooms />
      ) : (
        <section class="card narrow">
          <PageTitle>Live rooms</PageTitle>
          <p>Only admins can see the live rooms.</p>
        </section>
      )}
    </RequireSession>
  );
}
