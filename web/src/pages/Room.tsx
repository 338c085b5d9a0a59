// The interview room: a pre-join preview, then everyone's video through the SFU, mute toggles,
// chat and leave. Participant changes and chat are announced to screen readers.

import { useEffect, useRef, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { ApiError, api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, PageTitle } from '../components/ui';
import { type ChatLine, type ParticipantInfo, RoomConnection, type TrackInfo } from '../rtc';
import type { JoinResponse } from '../types';

interface RemoteTrack {
  info?: TrackInfo;
  track?: MediaStreamTrack;
}

interface MediaProps {
  track: MediaStreamTrack;
  kind: 'video' | 'audio';
  label: string;
  /** For remote video: reports visibility and size so hidden tiles get no video. */
  shown?: { connection: RoomConnection; trackId: string };
}

function Media({ track, kind, label, shown }: MediaProps) {
  const ref = useRef<HTMLVideoElement & HTMLAudioElement>(null);
  useEffect(() => {
    if (ref.current) {
      ref.current.srcObject = new MediaStream([track]);
      void ref.current.play().catch(() => undefined);
    }
  }, [track]);
  const connection = shown?.connection;
  const trackId = shown?.trackId;
  useEffect(() => {
    const element = ref.current;
    if (!element || !connection || !trackId) return;
    const observer = new IntersectionObserver(([entry]) => {
      if (entry) connection.tileShown(trackId, entry.isIntersecting, entry.boundingClientRect.width);
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [connection, trackId]);
  return kind === 'video' ? (
    <video ref={ref} autoPlay playsInline muted aria-label={label} />
  ) : (
    <audio ref={ref} autoPlay aria-label={label} />
  );
}

function RoomContent({ id }: { id: string }) {
  const { route } = useLocation();
  const [preview, setPreview] = useState<MediaStream | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [connection, setConnection] = useState<RoomConnection | null>(null);
  const [me, setMe] = useState<ParticipantInfo | null>(null);
  const [people, setPeople] = useState<Map<string, ParticipantInfo>>(new Map());
  const [tracks, setTracks] = useState<Map<string, RemoteTrack>>(new Map());
  const [chat, setChat] = useState<ChatLine[]>([]);
  const [speakers, setSpeakers] = useState<Set<string>>(new Set());
  const [draft, setDraft] = useState('');
  const [micOff, setMicOff] = useState(false);
  const [camOff, setCamOff] = useState(false);
  const [announcement, setAnnouncement] = useState('');
  const [closed, setClosed] = useState<string | null>(null);
  // Our identity, read by the room callbacks (which outlive any one render).
  const myIdentity = useRef('');

  useEffect(() => {
    let stream: MediaStream | null = null;
    navigator.mediaDevices
      .getUserMedia({ video: { width: 640, height: 480 }, audio: true })
      .then((s) => {
        stream = s;
        setPreview(s);
      })
      .catch(() =>
        setError(new ApiError(0, 'no_devices', 'Camera or microphone unavailable. Allow access and reload.')),
      );
    return () => stream?.getTracks().forEach((t) => t.stop());
  }, []);

  // A callback ref: the preview element is a new one after joining, and each must get the stream.
  const attachPreview = (element: HTMLVideoElement | null) => {
    if (element && preview && element.srcObject !== preview) element.srcObject = preview;
  };

  useEffect(() => () => connection?.leave(), [connection]);

  const updateTrack = (trackId: string, change: Partial<RemoteTrack>) =>
    setTracks((current) => new Map(current).set(trackId, { ...current.get(trackId), ...change }));

  const join = async () => {
    if (!preview) return;
    setError(null);
    try {
      const grant = await api<JoinResponse>('POST', `/api/interviews/${encodeURIComponent(id)}/join`, {});
      const room = new RoomConnection(grant.room, grant.token, preview, {
        joined(you, participants, existing) {
          myIdentity.current = you.identity;
          setMe(you);
          setPeople(new Map(participants.map((p) => [p.identity, p])));
          for (const t of existing) updateTrack(t.id, { info: t });
        },
        participantJoined(p) {
          setPeople((current) => new Map(current).set(p.identity, p));
          setAnnouncement(`${p.name} joined`);
        },
        participantLeft(identity) {
          setPeople((current) => {
            const next = new Map(current);
            const name = next.get(identity)?.name ?? 'Someone';
            next.delete(identity);
            setAnnouncement(`${name} left`);
            return next;
          });
        },
        trackPublished(t) {
          if (t.participant === myIdentity.current) room.ownTrack(t.id, t.source);
          updateTrack(t.id, { info: t });
        },
        trackUnpublished(trackId) {
          setTracks((current) => {
            const next = new Map(current);
            next.delete(trackId);
            return next;
          });
        },
        trackMuted(trackId, muted) {
          setTracks((current) => {
            const entry = current.get(trackId);
            if (!entry?.info) return current;
            return new Map(current).set(trackId, { ...entry, info: { ...entry.info, muted } });
          });
        },
        remoteTrack(trackId, track) {
          updateTrack(trackId, { track });
        },
        chat(line) {
          setChat((current) => [...current.slice(-199), line]);
        },
        activeSpeakers(identities) {
          setSpeakers(new Set(identities));
        },
        error(code, message) {
          setError(new ApiError(0, code, message));
        },
        closed(reason) {
          setClosed(reason);
        },
      });
      setConnection(room);
    } catch (err) {
      setError(err);
    }
  };

  const leave = () => {
    connection?.leave();
    setConnection(null);
    route(`/interviews/${id}`);
  };

  const sendChat = (event: Event) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text || !connection) return;
    connection.chat(text);
    setDraft('');
  };

  const remote = [...people.values()];
  // The newest track wins: after a participant rejoins, their old track may linger until the
  // server reports it gone.
  const trackOf = (identity: string, source: string) =>
    [...tracks.values()].filter((t) => t.info?.participant === identity && t.info.source === source).at(-1);

  if (!connection) {
    return (
      <section class="card narrow">
        <PageTitle>Ready to join?</PageTitle>
        <ErrorAlert error={error} />
        <video ref={attachPreview} class="preview" autoPlay playsInline muted aria-label="Your camera preview" />
        <div class="actions">
          <button type="button" disabled={!preview} onClick={join}>
            Join room
          </button>
          <a href={`/interviews/${id}`}>Back</a>
        </div>
      </section>
    );
  }

  return (
    <section class="room">
      <PageTitle>Interview room</PageTitle>
      <p class="visually-hidden" aria-live="polite">
        {announcement}
      </p>
      {closed && (
        <p class="alert" role="alert">
          You are no longer connected ({closed}).
        </p>
      )}
      <ErrorAlert error={error} />
      <div class="grid">
        <figure class={me && speakers.has(me.identity) ? 'tile speaking' : 'tile'}
          data-participant={me?.identity ?? 'me'}>
          <video ref={attachPreview} autoPlay playsInline muted aria-label="Your camera" />
          <figcaption>{me?.name ?? 'You'} (you)</figcaption>
        </figure>
        {remote.map((p) => {
          const video = trackOf(p.identity, 'camera');
          const audio = trackOf(p.identity, 'microphone');
          return (
            <figure class={speakers.has(p.identity) ? 'tile speaking' : 'tile'} key={p.identity}
              data-participant={p.identity}>
              {video?.track && !video.info?.muted ? (
                <Media track={video.track} kind="video" label={`${p.name}'s camera`}
                  shown={video.info ? { connection, trackId: video.info.id } : undefined} />
              ) : (
                <div class="no-video">{video?.info?.muted ? 'Camera off' : 'No video'}</div>
              )}
              {audio?.track && <Media track={audio.track} kind="audio" label={`${p.name}'s microphone`} />}
              <figcaption>
                {p.name} · {p.role}
                {speakers.has(p.identity) && <span class="badge">speaking</span>}
                {audio?.info?.muted && <span class="badge">muted</span>}
              </figcaption>
            </figure>
          );
        })}
      </div>
      <div class="actions">
        <button type="button" class="secondary" aria-pressed={micOff}
          onClick={() => {
            connection.setMuted('audio', !micOff);
            setMicOff(!micOff);
          }}>
          {micOff ? 'Unmute microphone' : 'Mute microphone'}
        </button>
        <button type="button" class="secondary" aria-pressed={camOff}
          onClick={() => {
            connection.setMuted('video', !camOff);
            setCamOff(!camOff);
          }}>
          {camOff ? 'Turn camera on' : 'Turn camera off'}
        </button>
        <button type="button" class="danger" onClick={leave}>
          Leave
        </button>
      </div>
      <section class="chat" aria-labelledby="chat-heading">
        <h2 id="chat-heading">Chat</h2>
        <ol aria-live="polite">
          {chat.map((line) => (
            <li key={`${line.at}-${line.from}`}>
              <strong>{line.name}:</strong> {line.text}
            </li>
          ))}
        </ol>
        <form onSubmit={sendChat}>
          <label for="chat-input">Message</label>
          <input id="chat-input" value={draft} maxLength={4000}
            onInput={(e) => setDraft((e.currentTarget as HTMLInputElement).value)} />
          <button type="submit">Send</button>
        </form>
      </section>
    </section>
  );
}

export function Room() {
  const { params } = useRoute();
  return (
    <RequireSession>
      <RoomContent id={params.id} />
    </RequireSession>
  );
}
