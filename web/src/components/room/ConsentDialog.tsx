// The consent step: recording, proctoring, or both, agreed to in one step.

import { useEffect, useRef } from 'preact/hooks';
import type { ProctoringNotice } from '../../proctoring';
import type { RecordingNotice } from '../../rtc';

function keptFor(days: number, what: string): string {
  return days > 0
    ? `${what} kept for ${days} days after the interview, then deleted.`
    : `${what} kept until an administrator deletes them.`;
}

/**
 * Asks one participant to agree to what applies to them: a candidate is told what is recorded
 * and what is checked, who sees it, how long it is kept and what is not done; an interviewer
 * acknowledges the recording. Nothing of theirs is recorded or checked before.
 */
export function ConsentDialog({ role, recording, proctoring, onAgree, onLeave }: {
  role: string;
  /** Set when the recording waits for this person. */
  recording: RecordingNotice | null;
  /** Set when proctoring waits for this person (candidates only). */
  proctoring: ProctoringNotice | null;
  onAgree: () => void;
  onLeave: () => void;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  const candidate = role === 'candidate';
  const title = !candidate
    ? 'Recording acknowledgement'
    : recording && proctoring
      ? 'This interview is recorded and proctored'
      : proctoring
        ? 'This interview is proctored'
        : 'This interview will be recorded';
  const agree = !candidate
    ? 'Acknowledge'
    : recording && proctoring
      ? 'I agree to recording and proctoring'
      : proctoring
        ? 'I agree to proctoring'
        : 'I agree to be recorded';
  return (
    <div class="dialog-backdrop">
      <section class="card dialog" role="alertdialog" aria-modal="true" aria-labelledby="consent-heading"
        aria-describedby="consent-text">
        <h2 id="consent-heading" tabIndex={-1} ref={heading}>
          {title}
        </h2>
        <div id="consent-text" class="consent-text">
          {candidate && recording && (
            <>
              <h3>Recording</h3>
              <p>
                The interviewers want to record this interview. The recording holds your camera, microphone, shared
                screen and paired phone camera, the other participants' video and sound, and the chat. It is seen only
                by this interview's interviewers, the reviewers assigned to it and administrators, and every viewing is
                logged. {keptFor(recording.retention_days, 'Recordings are')}
              </p>
            </>
          )}
          {candidate && proctoring && (
            <>
              <h3>Proctoring</h3>
              <p>
                The server looks at the video it receives from your camera and, if you pair one, your phone. It marks
                moments for a person to look at: no face visible, more than one face, a dark or unchanging picture,
                video that stopped, and on the phone a view that changed or a face that was not there at the start.
              </p>
              <p>
                These checks can be wrong. They never decide anything: an interviewer or reviewer looks at each moment
                and may dismiss it. If the face detector cannot see your face well at the start, face checks are
                switched off for you and nothing is held against you.
              </p>
              <p>
                <strong>Not done:</strong> no emotion or stress reading, no judging where you look, no face
                recognition, no voice identification, no score.
              </p>
              <p>
                Kept: each marked moment with a small still picture, seen only by this interview's
                interviewers, assigned reviewers and administrators. {keptFor(proctoring.retention_days, 'They are')}
              </p>
              <p class="muted">
                Tips: light in front of you rather than behind; camera at eye level; the phone to one side, showing
                your desk and hands.
              </p>
            </>
          )}
          {candidate ? (
            <p>Nothing of yours is recorded or checked unless you agree. If you do not, you can leave the room.</p>
          ) : (
            <p>
              This interview is being recorded, including your camera, microphone and screen.{' '}
              {recording ? keptFor(recording.retention_days, 'Recordings are') : ''} Please acknowledge before your
              media is recorded.
            </p>
          )}
        </div>
        <div class="actions">
          <button type="button" onClick={onAgree}>
            {agree}
          </button>
          <button type="button" class="secondary" onClick={onLeave}>
            Leave the room
          </button>
        </div>
      </section>
    </div>
  );
}
