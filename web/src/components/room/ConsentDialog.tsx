// The recording consent step.

import { useEffect, useRef } from 'preact/hooks';
import type { RecordingNotice } from '../../rtc';

/**
 * Asks one participant to agree to the recording: a candidate is told what is recorded, who sees
 * it and how long it is kept; an interviewer acknowledges. Nothing of theirs is recorded before.
 */
export function ConsentDialog({ role, notice, onAgree, onLeave }: {
  role: string;
  notice: RecordingNotice;
  onAgree: () => void;
  onLeave: () => void;
}) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  const kept =
    notice.retention_days > 0
      ? `It is kept for ${notice.retention_days} days after the interview, then deleted.`
      : 'It is kept until an administrator deletes it.';
  return (
    <div class="dialog-backdrop">
      <section class="card dialog" role="alertdialog" aria-modal="true" aria-labelledby="consent-heading"
        aria-describedby="consent-text">
        <h2 id="consent-heading" tabIndex={-1} ref={heading}>
          {role === 'candidate' ? 'This interview will be recorded' : 'Recording acknowledgement'}
        </h2>
        <div id="consent-text">
          {role === 'candidate' ? (
            <>
              <p>
                The interviewers want to record this interview. The recording holds your camera, microphone, shared
                screen and paired phone camera, the other participants' video and sound, and the chat.
              </p>
              <p>
                It is seen only by this interview's interviewers, the reviewers assigned to it and administrators,
                and every viewing is logged. {kept}
              </p>
              <p>Nothing of yours is recorded unless you agree. If you do not, you can leave the room.</p>
            </>
          ) : (
            <p>
              This interview is being recorded, including your camera, microphone and screen. {kept} Please
              acknowledge before your media is recorded.
            </p>
          )}
        </div>
        <div class="actions">
          <button type="button" onClick={onAgree}>
            {role === 'candidate' ? 'I agree to be recorded' : 'Acknowledge'}
          </button>
          <button type="button" class="secondary" onClick={onLeave}>
            Leave the room
          </button>
        </div>
      </section>
    </div>
  );
}
