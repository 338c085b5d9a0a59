// What the room says about itself: recording, proctoring and connection badges, a proctoring
// hint for the candidate, and the notices for reconnecting or a closed connection.
import { type ProctoringHint, hintText } from '../../proctoring';
import type { ConnectionQuality, RecordingNotice } from '../../rtc';

const QUALITY_TEXT: Record<ConnectionQuality, string> = {
  good: 'Connection: good',
  fair: 'Connection: fair',
  poor: 'Connection: poor',
  lost: 'Connection: lost',
};

/** What a closed room connection tells its user, by the reason the server gave. */
const CLOSED_TEXT: Record<string, string> = {
  removed: 'An interviewer removed you from this room. They can let you back in; then join again.',
  session_ended: 'This session has ended because your invite link was sent again. Open the newest link.',
  replaced: 'You joined this room from another tab or device.',
  room_closed: 'An administrator closed this room. You can join again while the interview is open.',
  page_hidden: 'You left the room when you went to another page. Reload this page to join again.',
};

export function RoomStatus({ recording, proctored, quality, hint, onHintSeen, reconnecting, closed }: {
  recording: RecordingNotice['state'];
  proctored: boolean;
  quality: ConnectionQuality | null;
  hint: ProctoringHint | null;
  onHintSeen: () => void;
  reconnecting: boolean;
  /** Why the connection was closed, if it was. */
  closed: string | null;
}) {
  return (
    <>
      <div class="room-status">
        {recording === 'on' && (
          <span class="badge recording" role="status">
            ● Recording
          </span>
        )}
        {recording === 'waiting_for_consent' && (
          <span class="badge" role="status">
            Recording starts once everyone agrees
          </span>
        )}
        {proctored && (
          <span class="badge proctored" role="status"
            title="The server checks candidates' cameras and marks moments for a person to look at.">
            Proctored
          </span>
        )}
        {quality && (
          <span class={`badge quality-${quality}`} role="status">
            {QUALITY_TEXT[quality]}
          </span>
        )}
      </div>
      {hint && (
        <p class="notice hint" role="status">
          {hintText(hint)}{' '}
          <button type="button" class="secondary small" onClick={onHintSeen}>
            OK
          </button>
        </p>
      )}
      {reconnecting && (
        <p class="notice" role="status">
          Reconnecting… Your camera and microphone stay on while Sightline reconnects.
        </p>
      )}
      {closed && (
        <p class="alert" role="alert">
          {CLOSED_TEXT[closed] ?? `You are no longer connected (${closed}).`}
        </p>
      )}
    </>
  );
}
