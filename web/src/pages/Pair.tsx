// The page a phone opens from the room's QR code (/pair/{token}) or where a code is typed
// (/pair): no account, a consent screen that says what is shared and with whom, a choice of
// camera (rear by default), then the phone's camera goes to the interview through the SFU,
// video only. The screen is kept on while sharing; a reload rejoins without a new code.

import { useEffect, useRef, useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { ApiError } from '../api';
import { ErrorAlert, PageTitle } from '../components/ui';
import {
  type Facing,
  type PairingPreview,
  type PairingSecret,
  forgetSession,
  inspectPairing,
  keepAwake,
  openPhoneCamera,
  phoneGrant,
  redeemPairing,
  rememberSession,
  rememberedSession,
} from '../phone';
import { RoomConnection } from '../rtc';

const PROBLEM: Record<string, string> = {
  pairing_not_found: 'This pairing code is not valid. Check it, or ask for a new one in the interview room.',
  pairing_used: 'This pairing code has already been used. Open “Add phone camera” in the room for a new one.',
  pairing_expired: 'This pairing code has expired (codes last five minutes). Open “Add phone camera” in the room for a new one.',
  pairing_revoked: 'This pairing code no longer works: a newer one was made, the phone was removed, or the interview is closed.',
  phone_session_ended: 'This phone is no longer paired with the interview. Scan a new code to pair it again.',
};

const ENDED: Record<string, string> = {
  replaced: 'Another phone was paired for this interview, so this one stopped sharing.',
  removed: 'The phone was removed from the interview. Nothing is shared any more.',
  left: 'You stopped sharing. Nothing is shared any more.',
  timed_out: 'The connection was lost for too long. Scan a new code to pair again.',
  disconnected: 'The connection to the interview ended.',
  room_closed: 'An administrator closed the interview room. Nothing is shared any more; scan a new code to pair again.',
};

type Stage =
  | { kind: 'enter-code' }
  | { kind: 'loading' }
  | { kind: 'consent'; preview: PairingPreview }
  | { kind: 'starting' }
  | { kind: 'denied' }
  | { kind: 'live'; stream: MediaStream }
  | { kind: 'ended'; reason: string };

function PhoneCamera({ stream }: { stream: MediaStream }) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    if (ref.current) ref.current.srcObject = stream;
  }, [stream]);
  return <video ref={ref} class="phone-preview" autoPlay playsInline muted aria-label="What this phone shares" />;
}

export function Pair() {
  const { params } = useRoute();
  const token = params.token ?? '';
  // What this tab paired with, to find its session again after a reload.
  const pairedWith = token || 'code';
  const [secret, setSecret] = useState<PairingSecret | null>(token ? { token } : null);
  const [stage, setStage] = useState<Stage>(token ? { kind: 'loading' } : { kind: 'enter-code' });
  const [typed, setTyped] = useState('');
  const [facing, setFacing] = useState<Facing>('environment');
  const [error, setError] = useState<unknown>(null);
  const connection = useRef<RoomConnection | null>(null);

  const stop = () => {
    connection.current?.leave();
    connection.current = null;
  };
  useEffect(() => stop, []);

  // Sharing keeps the phone awake.
  const live = stage.kind === 'live';
  useEffect(() => (live ? keepAwake() : undefined), [live]);

  const share = async (session: string, chosen: Facing) => {
    setStage({ kind: 'starting' });
    let stream: MediaStream;
    try {
      stream = await openPhoneCamera(chosen);
    } catch (err) {
      if (err instanceof DOMException && (err.name === 'NotAllowedError' || err.name === 'SecurityError')) {
        setStage({ kind: 'denied' });
      } else {
        setError(new ApiError(0, 'no_camera', 'The camera of this phone could not be started.'));
        setStage({ kind: 'ended', reason: 'problem' });
      }
      return;
    }
    try {
      const grant = await phoneGrant(session);
      connection.current = new RoomConnection(
        grant,
        () => phoneGrant(session),
        stream,
        {
          joined() {},
          participantJoined() {},
          participantLeft() {},
          participantReconnecting() {},
          participantConnection() {},
          trackPublished() {},
          trackUnpublished() {},
          trackMuted() {},
          trackStalled() {},
          trackUnplayable() {},
          limits() {},
          recording() {},
          proctoring() {},
          proctoringEvent() {},
          proctoringHint() {},
          remoteTrack() {},
          chat() {},
          activeSpeakers() {},
          reconnecting() {},
          connectionQuality() {},
          screenShareEnded() {},
          mutedByModerator() {},
          error(code, message) {
            setError(new ApiError(0, code, message));
          },
          closed(reason) {
            stream.getTracks().forEach((t) => t.stop());
            if (reason === 'replaced' || reason === 'removed') forgetSession();
            setStage({ kind: 'ended', reason });
          },
        },
        'phone',
      );
      setStage({ kind: 'live', stream });
    } catch (err) {
      stream.getTracks().forEach((t) => t.stop());
      setError(err);
      setStage({ kind: 'ended', reason: 'disconnected' });
    }
  };

  // A reload of a paired tab rejoins at once (paired by link or by code); otherwise show what
  // pairing would share.
  useEffect(() => {
    const session = rememberedSession(pairedWith);
    if (session) {
      void share(session, facing);
      return;
    }
    if (!secret) return;
    setStage({ kind: 'loading' });
    inspectPairing(secret).then(
      (preview) => setStage({ kind: 'consent', preview }),
      (err) => {
        setError(err);
        setStage(token ? { kind: 'ended', reason: 'problem' } : { kind: 'enter-code' });
      },
    );
  }, [secret]);

  const consent = async () => {
    if (!secret) return;
    setError(null);
    try {
      const session = await redeemPairing(secret);
      rememberSession(pairedWith, session);
      await share(session, facing);
    } catch (err) {
      setError(err);
      setStage({ kind: 'ended', reason: 'problem' });
    }
  };

  const retryCamera = () => {
    const session = rememberedSession(pairedWith);
    if (session) void share(session, facing);
  };

  const problem = error instanceof ApiError ? PROBLEM[error.code] : undefined;

  return (
    <section class="card narrow phone-page">
      <PageTitle>{problem ? 'Pairing problem' : 'Phone camera'}</PageTitle>
      {problem ? (
        <p class="alert" role="alert">
          {problem}
        </p>
      ) : (
        <ErrorAlert error={error} />
      )}

      {stage.kind === 'enter-code' && (
        <form
          onSubmit={(event) => {
            event.preventDefault();
            setError(null);
            if (typed.trim()) setSecret({ code: typed.trim() });
          }}>
          <p>Type the 8-character code shown in the interview room under “Add phone camera”.</p>
          <label for="pairing-code">Pairing code</label>
          <input id="pairing-code" class="code-input" value={typed} autoComplete="off" autoCapitalize="characters"
            spellcheck={false} maxLength={16} inputMode="text"
            onInput={(e) => setTyped((e.currentTarget as HTMLInputElement).value)} />
          <button type="submit" class="large">
            Continue
          </button>
        </form>
      )}

      {(stage.kind === 'loading' || stage.kind === 'starting') && (
        <p class="muted" role="status">
          {stage.kind === 'loading' ? 'Checking the code…' : 'Starting the camera…'}
        </p>
      )}

      {stage.kind === 'consent' && (
        <>
          <p>This phone will be a second camera in an interview.</p>
          <dl class="facts">
            <dt>Interview</dt>
            <dd>{stage.preview.title}</dd>
            <dt>For</dt>
            <dd>{stage.preview.candidate_name}</dd>
            <dt>Seen by</dt>
            <dd>
              {stage.preview.interviewers.length > 0
                ? `The interviewers (${stage.preview.interviewers.join(', ')}) and you`
                : 'The interviewers and you'}
            </dd>
            <dt>Shared</dt>
            <dd>Only this phone's camera video, while this page is open. No sound, nothing else from this phone.</dd>
          </dl>
          <fieldset class="facing">
            <legend>Which camera?</legend>
            <label>
              <input type="radio" name="facing" value="environment" checked={facing === 'environment'}
                onChange={() => setFacing('environment')} />
              Rear camera (recommended)
            </label>
            <label>
              <input type="radio" name="facing" value="user" checked={facing === 'user'}
                onChange={() => setFacing('user')} />
              Front camera
            </label>
          </fieldset>
          <p class="hint">
            Place the phone about 1–2 metres away, to your side, so it shows you, your desk and your screen.
            Keep it plugged in if you can.
          </p>
          <button type="button" class="large" onClick={() => void consent()}>
            Share camera
          </button>
        </>
      )}

      {stage.kind === 'denied' && (
        <div role="alert" class="alert">
          <p>
            Camera access was refused, so nothing is shared. Allow the camera for this site in your browser's settings
            (often under the address bar's lock or “aA” icon), then try again.
          </p>
          <button type="button" class="large" onClick={retryCamera}>
            Try again
          </button>
        </div>
      )}

      {stage.kind === 'live' && (
        <>
          <p class="notice" role="status">
            Sharing this camera with the interview. Keep this page open.
          </p>
          <PhoneCamera stream={stage.stream} />
          <button type="button" class="large danger"
            onClick={() => {
              stop();
              forgetSession();
              setStage({ kind: 'ended', reason: 'left' });
            }}>
            Stop sharing
          </button>
        </>
      )}

      {stage.kind === 'ended' && stage.reason !== 'problem' && (
        <p class="notice" role="status">
          {ENDED[stage.reason] ?? ENDED.disconnected}
        </p>
      )}
    </section>
  );
}
