// The interviewer's quiet proctoring panel: events as they open and close, newest first, each
// with what was seen, when, for how long, and its snapshot. Never shown to candidates (the
// server sends events only to interviewers and reviewers).

import { Snapshot } from '../Snapshot';
import { type LiveEvent, kindExplanation, kindLabel, spanText } from '../../proctoring';

/** Events shown at most (the oldest drop off; the full list is on the interview's review). */
const SHOWN = 30;

export function ProctoringPanel({ interview, events, waitingFor, nameOf }: {
  interview: string;
  events: LiveEvent[];
  /** Candidates present who have not agreed yet: nothing of theirs is checked. */
  waitingFor: string[];
  nameOf: (identity: string) => string;
}) {
  const newest = [...events].sort((a, b) => b.started_at_ms - a.started_at_ms).slice(0, SHOWN);
  return (
    <section class="card proctoring-panel" aria-labelledby="proctoring-heading">
      <h2 id="proctoring-heading">Proctoring</h2>
      <p class="muted small">Moments to look at, not verdicts. Review them after the interview.</p>
      {waitingFor.length > 0 && (
        <p class="small" role="status">
          Not checked until they agree: {waitingFor.map(nameOf).join(', ')}
        </p>
      )}
      {newest.length === 0 ? (
        <p class="muted">Nothing marked.</p>
      ) : (
        <ul class="proctoring-events" aria-live="polite">
          {newest.map((event) => (
            <li key={event.id} class={`proctoring-event ${event.severity}`} data-kind={event.kind}>
              {event.snapshot && (
                <Snapshot interview={interview} event={event.id} label={`${kindLabel(event.kind)}: snapshot`} />
              )}
              <span>
                <strong>{kindLabel(event.kind)}</strong> — {nameOf(event.participant)}
                <br />
                <span class="muted small">
                  {new Date(event.started_at_ms).toLocaleTimeString()} · {spanText(event.started_at_ms, event.ended_at_ms)}
                </span>
                <br />
                <span class="muted small">{kindExplanation(event.kind)}</span>
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
