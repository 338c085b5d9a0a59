// Reviewing an interview's proctoring events: a summary by kind and review state (no score), and
// each event with what was seen, when, its snapshot, and confirm or dismiss with a note. Used on
// the interview page and beside the player (where an event also seeks the recording).

import { useState } from 'preact/hooks';
import { api } from '../api';
import { type ProctoringView, type StoredEvent, kindExplanation, kindLabel, spanText } from '../proctoring';
import { Snapshot } from './Snapshot';
import { ErrorAlert } from './ui';

function EventItem({ interview, event, nameOf, onSeek, onReviewed }: {
  interview: string;
  event: StoredEvent;
  nameOf: (participant: string) => string;
  /** Set when the event falls within the recording being played. */
  onSeek?: (event: StoredEvent) => void;
  onReviewed: (event: StoredEvent) => void;
}) {
  const [note, setNote] = useState(event.review_note ?? '');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const review = (verdict: 'confirmed' | 'dismissed') => {
    setBusy(true);
    setError(null);
    api<StoredEvent>(
      'POST',
      `/api/interviews/${encodeURIComponent(interview)}/proctoring/${encodeURIComponent(event.id)}/review`,
      { verdict, note },
    ).then(
      (updated) => {
        setBusy(false);
        onReviewed(updated);
      },
      (err) => {
        setBusy(false);
        setError(err);
      },
    );
  };
  const label = kindLabel(event.kind);
  return (
    <li class={`proctoring-event ${event.severity}`} data-event={event.id} data-kind={event.kind}>
      {event.snapshots > 0 && <Snapshot interview={interview} event={event.id} label={`${label}: snapshot`} />}
      <div>
        <strong>{label}</strong> — {nameOf(event.participant_id)} ({event.source}),{' '}
        {new Date(event.started_at_ms).toLocaleTimeString()}, {spanText(event.started_at_ms, event.ended_at_ms)}
        <p class="muted small">{kindExplanation(event.kind)}</p>
        <p class="muted small">
          Detector {event.detector}
          {event.peak_score !== null ? `, strongest ${event.peak_score.toFixed(2)}` : ''}
        </p>
        {event.verdict && (
          <p class="small" role="status">
            {event.verdict === 'confirmed' ? 'Confirmed' : 'Dismissed'}
            {event.review_note ? `: ${event.review_note}` : ''}
          </p>
        )}
        <div class="actions">
          {onSeek && (
            <button type="button" class="secondary small" onClick={() => onSeek(event)}>
              Show in recording
            </button>
          )}
          <label class="visually-hidden" for={`note-${event.id}`}>
            Note on {label}
          </label>
          <input id={`note-${event.id}`} class="note" maxLength={2000} placeholder="Note (optional)" value={note}
            onInput={(e) => setNote((e.currentTarget as HTMLInputElement).value)} />
          <button type="button" class="secondary small" disabled={busy} onClick={() => review('confirmed')}
            aria-label={`Confirm ${label}`}>
            Confirm
          </button>
          <button type="button" class="secondary small" disabled={busy} onClick={() => review('dismissed')}
            aria-label={`Dismiss ${label}`}>
            Dismiss
          </button>
        </div>
        <ErrorAlert error={error} />
      </div>
    </li>
  );
}

export function ProctoringReview({ interview, view, nameOf, onSeek, canSeek, onChange }: {
  interview: string;
  view: ProctoringView;
  nameOf: (participant: string) => string;
  onSeek?: (event: StoredEvent) => void;
  /** Whether `onSeek` can show an event (it lies within the recording). */
  canSeek?: (event: StoredEvent) => boolean;
  onChange: (view: ProctoringView) => void;
}) {
  const reviewed = (updated: StoredEvent) => {
    const events = view.events.map((e) => (e.id === updated.id ? updated : e));
    const summary = view.summary.map((k) => {
      if (k.kind !== updated.kind) return k;
      const ofKind = events.filter((e) => e.kind === k.kind);
      return {
        ...k,
        unreviewed: ofKind.filter((e) => !e.verdict).length,
        confirmed: ofKind.filter((e) => e.verdict === 'confirmed').length,
        dismissed: ofKind.filter((e) => e.verdict === 'dismissed').length,
      };
    });
    onChange({ ...view, events, summary });
  };
  return (
    <section class="proctoring-review" aria-labelledby="proctoring-review-heading">
      <h2 id="proctoring-review-heading">Proctoring</h2>
      <p class="muted small">
        Moments the server marked for a person to look at. They can be wrong; none is a verdict, and there is no
        score. Face detector: {view.detector}.
      </p>
      {view.summary.length > 0 ? (
        <table class="proctoring-summary">
          <caption class="visually-hidden">Events by kind</caption>
          <thead>
            <tr>
              <th scope="col">What</th>
              <th scope="col">Events</th>
              <th scope="col">To review</th>
              <th scope="col">Confirmed</th>
              <th scope="col">Dismissed</th>
            </tr>
          </thead>
          <tbody>
            {view.summary.map((k) => (
              <tr key={k.kind} data-kind={k.kind}>
                <td>{kindLabel(k.kind)}</td>
                <td>{k.total}</td>
                <td>{k.unreviewed}</td>
                <td>{k.confirmed}</td>
                <td>{k.dismissed}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>Nothing was marked.</p>
      )}
      <ul class="proctoring-events">
        {view.events.map((event) => (
          <EventItem key={event.id} interview={interview} event={event} nameOf={nameOf}
            onSeek={onSeek && (!canSeek || canSeek(event)) ? onSeek : undefined} onReviewed={reviewed} />
        ))}
      </ul>
    </section>
  );
}
