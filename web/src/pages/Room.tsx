// The interview room: a pre-join preview with device pickers and a microphone meter, then
// everyone's cameras and screens through the SFU, mute toggles, screen share, chat and leave.
// Participant changes, chat and our own connection state are announced to screen readers.

import { useEffect, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { ApiError, api } from '../api';
import { RequireSession } from '../app';
import { NotesPanel } from '../components/room/Notes';
import { ChatPanel } from '../components/ChatPanel';
import { Lazy } from '../components/Lazy';
import { DevicePickers, MicLevel } from '../components/devices';
import { ErrorAlert, Unavailable, isUnavailable } from '../components/ui';
import { type DeviceChoice, openDevice, openDevices } from '../media';
import { ConsentDialog } from '../components/room/ConsentDialog';
import { ProctoringPanel } from '../components/room/ProctoringPanel';
import {
  type LiveEvent,
  type ProctoringHint,
  type ProctoringNotice,
  type ProctoringView,
  liveFrom,
} from '../proctoring';
import { Media } from '../components/room/Media';
import { PairingDialog } from '../components/room/PairingDialog';
import { ParticipantTile, type RemoteTrack } from '../components/room/ParticipantTile';
import { PreJoin } from '../components/room/PreJoin';
import { RemovedList } from '../components/room/RemovedList';
import { RoomControls } from '../components/room/RoomControls';
import { RoomHeader } from '../components/room/RoomHeader';
import { RoomStatus } from '../components/room/RoomStatus';
import { PHONE_STATUS_TEXT, phoneStatus, removePhone } from '../phone';
import {
  type ChatLine,
  type ConnectionQuality,
  type JoinGrant,
  type ParticipantInfo,
  type RecordingNotice,
  RoomConnection,
  markStage,
} from '../rtc';
import type { Interview, JoinResponse } from '../types';

async function fetchGrant(interviewId: string): Promise<JoinGrant> {
  const grant = await api<JoinResponse>('POST', `/api/interviews/${encodeURIComponent(interviewId)}/join`, {});
  return { room: grant.room, token: grant.token };
}

function RoomContent({ id }: { id: string }) {
  const { route } = useLocation();
  const [preview, setPreview] = useState<MediaStream | null>(null);
  const [choice, setChoice] = useState<DeviceChoice>({});
  const [error, setError] = useState<unknown>(null);
  const [connection, setConnection] = useState<RoomConnection | null>(null);
  const [me, setMe] = useState<ParticipantInfo | null>(null);
  const [people, setPeople] = useState<Map<string, ParticipantInfo>>(new Map());
  const [tracks, setTracks] = useState<Map<string, RemoteTrack>>(new Map());
  const [chat, setChat] = useState<ChatLine[]>([]);
  const [speakers, setSpeakers] = useState<Set<string>>(new Set());
  const [micOff, setMicOff] = useState(false);
  const [camOff, setCamOff] = useState(false);
  const [screen, setScreen] = useState<MediaStreamTrack | null>(null);
  const [reconnecting, setReconnecting] = useState(false);
  const [quality, setQuality] = useState<ConnectionQuality | null>(null);
  const [showSettings, setShowSettings] = useState(false);
  const [announcement, setAnnouncement] = useState('');
  /** Whose phone the pairing dialog is for: ourselves (no candidate) or a candidate. */
  const [pairingFor, setPairingFor] = useState<{ candidate?: string; name?: string } | null>(null);
  const [recording, setRecording] = useState<RecordingNotice>({ state: 'off', needs_consent: [], retention_days: 0 });
  const [proctoring, setProctoring] = useState<ProctoringNotice>({ on: false, needs_consent: [], retention_days: 0 });
  /** Proctoring events of this room, by id (interviewers and reviewers get them). */
  const [marks, setMarks] = useState<Map<string, LiveEvent>>(new Map());
  /** The latest prompt about our own setup, until dismissed. */
  const [hint, setHint] = useState<ProctoringHint | null>(null);
  /** Candidates whose phone was in the room at some point: its absence then means disconnected. */
  const [phonesSeen, setPhonesSeen] = useState<Set<string>>(new Set());
  const [closed, setClosed] = useState<string | null>(null);
  const [chatLimit, setChatLimit] = useState(4000);
  /** People this moderator removed (identity to name), who stay out until let back in. */
  const [removed, setRemoved] = useState<Map<string, string>>(new Map());
  /** The interview, for the header; the room works without it. */
  const [interview, setInterview] = useState<Interview | null>(null);

  useEffect(() => {
    api<Interview>('GET', `/api/interviews/${encodeURIComponent(id)}`).then(setInterview, (err) => {
      // Not theirs, or not there: the page says so (below). Otherwise the room works without it.
      if (isUnavailable(err)) setError(err);
    });
  }, [id]);

  // A room this person may not enter keeps no camera or microphone open.
  const unavailable = isUnavailable(error);
  useEffect(() => {
    if (unavailable) preview?.getTracks().forEach((t) => t.stop());
  }, [unavailable, preview]);

  // Before joining, a device choice reopens the preview with the picked devices.
  useEffect(() => {
    if (connection) return;
    let stream: MediaStream | null = null;
    let cancelled = false;
    openDevices(choice)
      .then((s) => {
        if (cancelled) {
          s.getTracks().forEach((t) => t.stop());
          return;
        }
        stream = s;
        setPreview(s);
      })
      .catch(() =>
        setError(new ApiError(0, 'no_devices', 'Camera or microphone unavailable. Allow access and reload.')),
      );
    return () => {
      cancelled = true;
      stream?.getTracks().forEach((t) => t.stop());
    };
  }, [choice]);

  // A callback ref: the preview element is a new one after joining, and each must get the stream.
  const attachPreview = (element: HTMLVideoElement | null) => {
    if (element && preview && element.srcObject !== preview) element.srcObject = preview;
  };

  useEffect(() => () => connection?.leave(), [connection]);

  const notePhones = (participants: ParticipantInfo[]) => {
    const owners = participants.flatMap((p) => (p.phone_of ? [p.phone_of] : []));
    if (owners.length > 0) setPhonesSeen((current) => new Set([...current, ...owners]));
  };

  const recordingAction = async (action: 'start' | 'stop' | 'consent') => {
    try {
      await api('POST', `/api/interviews/${encodeURIComponent(id)}/recording/${action}`, {});
    } catch (err) {
      setError(err);
    }
  };

  const unpair = async (candidate: string) => {
    try {
      await removePhone(id, candidate);
      setPhonesSeen((current) => {
        const next = new Set(current);
        next.delete(candidate);
        return next;
      });
    } catch (err) {
      setError(err);
    }
  };

  const updateTrack = (trackId: string, change: Partial<RemoteTrack>) =>
    setTracks((current) => new Map(current).set(trackId, { ...current.get(trackId), ...change }));

  const pickDevice = async (kind: 'audio' | 'video', deviceId: string) => {
    if (!connection) {
      setChoice((current) => (kind === 'video' ? { ...current, camera: deviceId } : { ...current, microphone: deviceId }));
      return;
    }
    try {
      await connection.replaceDevice(await openDevice(kind, deviceId));
      // The same stream now holds the new track: re-render the pickers and the meter.
      setPreview(new MediaStream(connection.localTracks()));
    } catch (err) {
      setError(err);
    }
  };

  const join = async () => {
    if (!preview) return;
    setError(null);
    markStage('join');
    try {
      const grant = await fetchGrant(id);
      markStage('grant');
      const room = new RoomConnection(grant, () => fetchGrant(id), preview, {
        joined(you, participants, existing) {
          setMe(you);
          setPeople(new Map(participants.map((p) => [p.identity, p])));
          notePhones(participants);
          // After a resume the snapshot is the truth: tracks that ended meanwhile go.
          const known = new Set(existing.map((t) => t.id));
          setTracks((current) => {
            const next = new Map<string, RemoteTrack>();
            for (const [trackId, entry] of current) {
              if (!entry.info || known.has(trackId)) next.set(trackId, entry);
            }
            for (const t of existing) next.set(t.id, { ...next.get(t.id), info: t });
            return next;
          });
        },
        participantJoined(p) {
          setPeople((current) => new Map(current).set(p.identity, p));
          notePhones([p]);
          setAnnouncement(p.phone_of ? `${p.name}'s phone camera joined` : `${p.name} joined`);
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
        participantReconnecting(identity, active) {
          setPeople((current) => {
            const person = current.get(identity);
            if (!person) return current;
            return new Map(current).set(identity, { ...person, reconnecting: active });
          });
        },
        participantConnection(identity, quality) {
          setPeople((current) => {
            const person = current.get(identity);
            if (!person) return current;
            return new Map(current).set(identity, { ...person, connection: quality });
          });
        },
        trackPublished(t) {
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
        recording(notice) {
          setRecording((previous) => {
            if (previous.state !== notice.state) {
              setAnnouncement(
                notice.state === 'on'
                  ? 'Recording started'
                  : notice.state === 'off'
                    ? 'Recording stopped'
                    : 'Recording will start once everyone agrees',
              );
            }
            return notice;
          });
        },
        proctoring(notice) {
          setProctoring((previous) => {
            if (previous.on !== notice.on) setAnnouncement(notice.on ? 'Proctoring is on' : 'Proctoring is off');
            return notice;
          });
          if (!notice.on) setMarks(new Map());
        },
        proctoringEvent(event) {
          setMarks((current) => new Map(current).set(event.id, event));
        },
        proctoringHint(hint) {
          setHint(hint);
        },
        trackUnplayable(trackId, codec) {
          setTracks((current) => {
            const entry = current.get(trackId);
            if (!entry?.info) return current;
            const unplayable = codec ?? true;
            return new Map(current).set(trackId, { ...entry, info: { ...entry.info, unplayable } });
          });
        },
        limits(limits) {
          setChatLimit(limits.max_chat_chars);
        },
        trackStalled(trackId, stalled) {
          setTracks((current) => {
            const entry = current.get(trackId);
            if (!entry?.info) return current;
            return new Map(current).set(trackId, { ...entry, info: { ...entry.info, stalled } });
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
        reconnecting(active) {
          setReconnecting(active);
          setAnnouncement(active ? 'Connection lost, reconnecting' : 'Reconnected');
        },
        connectionQuality(q) {
          setQuality(q);
        },
        screenShareEnded() {
          setScreen(null);
        },
        mutedByModerator(source) {
          if (source === 'microphone') setMicOff(true);
          if (source === 'camera') setCamOff(true);
          setAnnouncement(`An interviewer turned off your ${source === 'microphone' ? 'microphone' : 'camera'}`);
        },
        error(code, message) {
          setError(new ApiError(0, code, message));
        },
        closed(reason) {
          setReconnecting(false);
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

  const toggleScreen = async () => {
    if (!connection) return;
    if (screen) {
      await connection.stopScreenShare();
      return;
    }
    try {
      setScreen(await connection.shareScreen());
    } catch (err) {
      // Cancelling the browser's picker is a choice, not an error.
      if (!(err instanceof DOMException && err.name === 'NotAllowedError')) setError(err);
    }
  };

  const everyone = [...people.values()];
  const remote = everyone.filter((p) => !p.phone_of);
  const moderator = me?.role === 'interviewer';
  const phoneOf = (candidate: string) => everyone.find((p) => p.phone_of === candidate);
  /** A candidate's phone: its participant, its tile's track and what the room should say. */
  const phone = (candidate: string) => {
    const participant = phoneOf(candidate);
    const camera = participant ? trackOf(participant.identity, 'secondary_camera') : undefined;
    return { participant, camera, status: phoneStatus(participant, camera?.info, phonesSeen.has(candidate)) };
  };
  const phoneBadge = (candidate: string) => {
    const { status } = phone(candidate);
    return status && <span class={`badge phone-status ${status}`} role="status">{PHONE_STATUS_TEXT[status]}</span>;
  };
  const phoneTile = (candidate: string, label: string) => {
    const { participant, camera } = phone(candidate);
    if (!participant) return null;
    return (
      <figure class="tile phone" key={participant.identity} data-participant={participant.identity}>
        {camera?.track && camera.info ? (
          <Media track={camera.track} kind="video" label={label}
            shown={{ connection: connection!, trackId: camera.info.id }} />
        ) : (
          <div class="no-video">Waiting for the phone's camera</div>
        )}
        <figcaption>
          {label} {phoneBadge(candidate)}
        </figcaption>
      </figure>
    );
  };
  const iAmCandidate = me?.role === 'candidate' && !me.phone_of;
  /** Interviewers and reviewers see proctoring events. */
  const assesses = me?.role === 'interviewer' || me?.role === 'reviewer';
  const nameOf = (identity: string) => people.get(identity)?.name ?? (me?.identity === identity ? me.name : 'Someone');
  const recordingAsks = !!me && recording.state !== 'off' && recording.needs_consent.includes(me.identity);
  const proctoringAsks = !!me && proctoring.on && proctoring.needs_consent.includes(me.identity);
  // Someone who assesses and joins late (or reloads) sees what was marked before.
  const proctoringOn = proctoring.on;
  useEffect(() => {
    if (!assesses || !proctoringOn) return;
    api<ProctoringView>('GET', `/api/interviews/${encodeURIComponent(id)}/proctoring`).then(
      (view) =>
        setMarks((current) => {
          const next = new Map(view.events.map((e) => [e.id, liveFrom(e)]));
          for (const [key, live] of current) next.set(key, live);
          return next;
        }),
      () => undefined,
    );
  }, [assesses, proctoringOn, id]);
  /** One agreement covers what applies: the recording, proctoring, or both. */
  const agree = async () => {
    if (recordingAsks) await recordingAction('consent');
    if (proctoringAsks) {
      try {
        await api('POST', `/api/interviews/${encodeURIComponent(id)}/proctoring/consent`, {});
      } catch (err) {
        setError(err);
      }
    }
  };
  // The newest track wins: after a participant rejoins, their old track may linger until the
  // server reports it gone.
  const trackOf = (identity: string, source: string) =>
    [...tracks.values()].filter((t) => t.info?.participant === identity && t.info.source === source).at(-1);

  if (!connection && unavailable) {
    return (
      <Unavailable title="This interview room isn't available to you"
        audience="A room is open only to the people invited to its interview." />
    );
  }
  if (!connection) {
    return (
      <PreJoin interviewId={id} title={interview?.title} error={error} preview={preview} attachPreview={attachPreview}
        onPick={(kind, deviceId) => void pickDevice(kind, deviceId)} onJoin={join} />
    );
  }

  return (
    <section class="room">
      <RoomHeader interview={interview}
        present={new Set([...(me ? [me.identity] : []), ...everyone.filter((p) => !p.phone_of).map((p) => p.identity)])} />
      <p class="visually-hidden" aria-live="polite">
        {announcement}
      </p>
      <RoomStatus recording={recording.state} proctored={proctoring.on} quality={quality} hint={hint}
        onHintSeen={() => setHint(null)} reconnecting={reconnecting} closed={closed} />
      <ErrorAlert error={error} />
      <div class="stage">
      <div class="media-column">
      <div class="grid">
        <figure class={me && speakers.has(me.identity) ? 'tile speaking' : 'tile'}
          data-participant={me?.identity ?? 'me'}>
          <video ref={attachPreview} autoPlay playsInline muted aria-label="Your camera" />
          <figcaption>
            {me?.name ?? 'You'} (you) {iAmCandidate && me && phoneBadge(me.identity)}
          </figcaption>
        </figure>
        {iAmCandidate && me && phoneTile(me.identity, 'Your phone camera')}
        {screen && (
          <figure class="tile screen" data-participant="me-screen">
            <Media track={screen} kind="video" label="Your screen" />
            <figcaption>Your screen</figcaption>
          </figure>
        )}
        {remote.map((p) => {
          const video = trackOf(p.identity, 'camera');
          const audio = trackOf(p.identity, 'microphone');
          const shared = trackOf(p.identity, 'screen_share');
          return [
            <ParticipantTile key={p.identity} person={p} camera={video} microphone={audio} connection={connection}
              speaking={speakers.has(p.identity)}
              phoneBadge={p.role === 'candidate' && (moderator || phoneOf(p.identity)) ? phoneBadge(p.identity) : null}
              moderation={
                moderator
                  ? {
                      addPhone: p.role === 'candidate' ? () => setPairingFor({ candidate: p.identity, name: p.name }) : undefined,
                      removePhone: p.role === 'candidate' && phoneOf(p.identity) ? () => void unpair(p.identity) : undefined,
                      remove: () => setRemoved((current) => new Map(current).set(p.identity, p.name)),
                    }
                  : undefined
              } />,
            p.role === 'candidate' && phoneTile(p.identity, `${p.name} — phone`),
            shared?.track && shared.info && (
              <figure class="tile screen" key={`${p.identity}-screen`} data-participant={`${p.identity}-screen`}>
                <Media track={shared.track} kind="video" label={`${p.name}'s screen`}
                  shown={{ connection, trackId: shared.info.id }} />
                <figcaption>{p.name} — screen</figcaption>
              </figure>
            ),
          ];
        })}
      </div>
      <RoomControls micOff={micOff} camOff={camOff} sharing={screen !== null} showSettings={showSettings}
        recording={moderator ? recording.state : null} canAddPhone={iAmCandidate}
        hasPhone={Boolean(iAmCandidate && me && phoneOf(me.identity))}
        onMic={() => {
          connection.setMuted('audio', !micOff);
          setMicOff(!micOff);
        }}
        onCamera={() => {
          connection.setMuted('video', !camOff);
          setCamOff(!camOff);
        }}
        onScreen={() => void toggleScreen()} onSettings={() => setShowSettings(!showSettings)}
        onRecording={() => void recordingAction(recording.state === 'off' ? 'start' : 'stop')}
        onAddPhone={() => setPairingFor({})} onRemovePhone={() => me && void unpair(me.identity)} onLeave={leave} />
      </div>
      <div class="workspace-slot">
        <Lazy load={() => import('../components/room/Workspace').then((m) => m.Workspace)}
          props={{ interviewId: id, manage: moderator }} what="the editor" />
      </div>
      </div>
      {me && (recordingAsks || proctoringAsks) && (
        <ConsentDialog role={me.role} recording={recordingAsks ? recording : null}
          proctoring={proctoringAsks ? proctoring : null} onAgree={() => void agree()} onLeave={leave} />
      )}
      {pairingFor && (
        <PairingDialog interviewId={id} candidate={pairingFor.candidate} candidateName={pairingFor.name}
          onClose={() => setPairingFor(null)} />
      )}
      {showSettings && preview && (
        <section class="card" aria-label="Devices">
          <DevicePickers stream={preview} onPick={(kind, deviceId) => void pickDevice(kind, deviceId)} />
          <MicLevel stream={preview} />
        </section>
      )}
      {moderator && (
        <RemovedList removed={removed}
          onReadmit={(identity) => {
            connection.readmit(identity);
            setRemoved((current) => {
              const next = new Map(current);
              next.delete(identity);
              return next;
            });
          }} />
      )}
      {assesses && proctoring.on && (
        <ProctoringPanel interview={id} events={[...marks.values()]} waitingFor={proctoring.needs_consent}
          nameOf={nameOf} />
      )}
      {(me?.role === 'interviewer' || me?.role === 'observer') && <NotesPanel interviewId={id} />}
      <ChatPanel lines={chat} maxLength={chatLimit} onSend={(text) => connection.chat(text)} />
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
