// What the room is about: the interview's title, when it is and how much time is left, and who
// was invited, with who is in the room now.

import { useEffect, useState } from 'preact/hooks';
import { formatWhen, slotNote } from '../../time';
import type { Interview } from '../../types';
import { PageTitle } from '../ui';

const ROLE_TEXT: Record<string, string> = {
  candidate: 'candidate',
  interviewer: 'interviewer',
  observer: 'observer',
  reviewer: 'reviewer',
};

/** The header; `present` holds the room identities (participant ids) connected now. */
export function RoomHeader({ interview, present }: { interview: Interview | null; present: Set<string> }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(timer);
  }, []);
  // One root whether or not the interview has loaded: the heading is not remounted (and does not
  // take focus again) when it arrives.
  return (
    <header class="room-head">
      <PageTitle>{interview?.title ?? 'Interview room'}</PageTitle>
      {interview && <RoomFacts interview={interview} present={present} now={now} />}
    </header>
  );
}

function RoomFacts({ interview, present, now }: { interview: Interview; present: Set<string>; now: number }) {
  return (
    <>
      <p class="when">
        {formatWhen(interview.scheduled_start)} · {interview.duration_minutes} minutes ·{' '}
        <span aria-live="off">{slotNote(interview.scheduled_start, interview.ends_at, now)}</span>
      </p>
      <ul class="room-people" aria-label="Participants">
        {interview.participants.map((p) => (
          <li key={p.id} class={present.has(p.id) ? 'present' : undefined}>
            {p.display_name} <span class="muted">({ROLE_TEXT[p.role] ?? p.role})</span>
            <span class="visually-hidden">{present.has(p.id) ? ', in the room' : ', not in the room'}</span>
          </li>
        ))}
      </ul>
    </>
  );
}
