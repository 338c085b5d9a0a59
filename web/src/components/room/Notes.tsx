// An interviewer's or observer's private notes in the room: only their author reads them (the
// server answers nobody else). They are saved a moment after typing stops, when the box loses
// focus and when the room is left; the status line says whether the server has them.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, sendBeforeLeaving } from '../../api';
import type { Notes } from '../../scorecards';
import { ErrorAlert } from '../ui';

/** Typing pauses this long before the notes are saved. */
const SAVE_AFTER_MS = 800;
/** A failed save is tried again after this long. */
const RETRY_AFTER_MS = 3000;
/** The server's limit, in characters. */
const MAX_CHARS = 50_000;

export function NotesPanel({ interviewId }: { interviewId: string }) {
  const path = `/api/interviews/${encodeURIComponent(interviewId)}/notes`;
  const [text, setText] = useState<string | null>(null);
  const [status, setStatus] = useState<'saving' | 'saved' | 'unsaved' | null>(null);
  const [error, setError] = useState<unknown>(null);
  // What the server last confirmed, and what is waiting to be sent.
  const saved = useRef('');
  const pending = useRef<string | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const inFlight = useRef(false);

  useEffect(() => {
    api<Notes>('GET', path).then((notes) => {
      saved.current = notes.body;
      setText(notes.body);
    }, setError);
  }, [path]);

  const flush = () => {
    clearTimeout(timer.current);
    const body = pending.current;
    if (body === null || inFlight.current) return;
    pending.current = null;
    if (body === saved.current) {
      setStatus('saved');
      return;
    }
    inFlight.current = true;
    setStatus('saving');
    api<Notes>('PUT', path, { body }).then(
      () => {
        saved.current = body;
        inFlight.current = false;
        setError(null);
        if (pending.current !== null) flush();
        else setStatus('saved');
      },
      (err) => {
        inFlight.current = false;
        // Kept for the next try: nothing typed is dropped.
        pending.current ??= body;
        setStatus('unsaved');
        setError(err);
        clearTimeout(timer.current);
        timer.current = setTimeout(flush, RETRY_AFTER_MS);
      },
    );
  };

  // Leaving the room saves what is left; closing or reloading the tab sends it on a request
  // that outlives the page.
  useEffect(() => {
    const leaving = () => {
      const body = pending.current;
      if (body !== null && body !== saved.current) sendBeforeLeaving('PUT', path, { body });
    };
    window.addEventListener('pagehide', leaving);
    return () => {
      window.removeEventListener('pagehide', leaving);
      flush();
    };
  }, [path]);

  const edit = (value: string) => {
    setText(value);
    pending.current = value;
    setStatus('unsaved');
    clearTimeout(timer.current);
    timer.current = setTimeout(flush, SAVE_AFTER_MS);
  };

  return (
    <section class="card notes" aria-labelledby="notes-heading">
      <h2 id="notes-heading">Your private notes</h2>
      <p class="hint" id="notes-hint">
        Only you can read these. The candidate never sees them; they are at hand when you fill in your scorecard.
      </p>
      <textarea id="notes-text" aria-labelledby="notes-heading" aria-describedby="notes-hint" rows={6}
        maxLength={MAX_CHARS} value={text ?? ''} disabled={text === null}
        onInput={(e) => edit((e.currentTarget as HTMLTextAreaElement).value)} onBlur={flush} />
      <span class="muted" role="status">
        {status === 'saving' ? 'Saving…' : status === 'saved' ? 'Saved' : status === 'unsaved' ? 'Not saved yet' : ''}
      </span>
      <ErrorAlert error={error} />
    </section>
  );
}
