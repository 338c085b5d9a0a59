// Code replay: the interview's shared code as it was at a moment, rebuilt from the stored
// changes (each with the time it reached the server), with the runs as markers and the output
// of the last run before that moment. In the reviewer player the player's clock drives it; on
// the interview page (no recording needed) it has a slider of its own.

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { EditorView, basicSetup } from 'codemirror';
import { Compartment, EditorState } from '@codemirror/state';
import * as Y from 'yjs';
import { fromBase64 } from 'lib0/buffer';
import { ApiError, api } from '../api';
import { cspNonce, highlighting, readOnly } from '../editor';
import { clock } from '../playback';
import { type RunView, runSummary } from '../workspace';
import { ErrorAlert } from './ui';

interface History {
  changes: { seq: number; at_ms: number; update: string }[];
  runs: RunView[];
}

export interface CodeReplayProps {
  interviewId: string;
  /** Wall-clock milliseconds the replay shows; without it, the replay has its own slider. */
  atMs?: number;
  /** The timeline the markers are placed on: its start (wall clock) and length. */
  startMs?: number;
  lengthMs?: number;
  /** Moves the surrounding player to a moment (milliseconds since `startMs`). */
  onSeek?: (offsetMs: number) => void;
}

/** The text and language after the first `count` changes. */
function documentAfter(updates: Uint8Array[], count: number): { text: string; language: string } {
  const doc = new Y.Doc();
  if (count > 0) Y.applyUpdate(doc, Y.mergeUpdates(updates.slice(0, count)));
  const result = { text: doc.getText('code').toString(), language: String(doc.getMap('meta').get('language') ?? 'python') };
  doc.destroy();
  return result;
}

export function CodeReplay({ interviewId, atMs, startMs, lengthMs, onSeek }: CodeReplayProps) {
  const [history, setHistory] = useState<History | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [ownAt, setOwnAt] = useState<number | null>(null);
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const language = useRef(new Compartment());

  useEffect(() => {
    api<History>('GET', `/api/interviews/${encodeURIComponent(interviewId)}/workspace/history`).then(setHistory, setError);
  }, [interviewId]);

  const updates = useMemo(() => (history?.changes ?? []).map((c) => fromBase64(c.update)), [history]);
  const first = history?.changes[0]?.at_ms ?? 0;
  const last = Math.max(history?.changes.at(-1)?.at_ms ?? 0, ...(history?.runs ?? []).map((r) => r.finished_at_ms ?? r.created_at_ms));
  const standalone = atMs === undefined;
  const at = atMs ?? ownAt ?? last;
  const count = history ? history.changes.filter((c) => c.at_ms <= at).length : 0;
  const shown = useMemo(() => documentAfter(updates, count), [updates, count]);

  useEffect(() => {
    const editor = new EditorView({
      parent: host.current ?? undefined,
      state: EditorState.create({
        doc: '',
        extensions: [cspNonce(), basicSetup, readOnly(true), language.current.of([]),
          EditorView.contentAttributes.of({ 'aria-label': 'The code as it was' })],
      }),
    });
    view.current = editor;
    return () => editor.destroy();
  }, []);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    editor.dispatch({
      changes: { from: 0, to: editor.state.doc.length, insert: shown.text },
      effects: language.current.reconfigure(highlighting(shown.language)),
    });
  }, [shown]);

  const runs = history?.runs ?? [];
  const lastRun = [...runs].reverse().find((r) => r.created_at_ms <= at);
  const base = standalone ? first : (startMs ?? first);
  const span = standalone ? Math.max(1, last - first) : Math.max(1, lengthMs ?? last - first);
  const percent = (ms: number) => `${Math.min(100, Math.max(0, (100 * (ms - base)) / span))}%`;
  const seek = (wall: number) => (standalone ? setOwnAt(wall) : onSeek?.(wall - base));

  // Nobody sees that there is code they may not see.
  if (error instanceof ApiError && error.status === 404) return null;
  return (
    <section class="replay card" aria-labelledby="replay-heading">
      <h2 id="replay-heading">Code</h2>
      <ErrorAlert error={error} />
      {history && history.changes.length === 0 && <p class="muted">Nobody wrote code in this interview.</p>}
      {standalone && history && history.changes.length > 0 && (
        <>
          <label for="replay-position">Code at</label>
          <input id="replay-position" type="range" min={first} max={Math.max(first + 1, last)} step={100} value={at}
            aria-valuetext={clock(at - first)} onInput={(e) => setOwnAt(Number((e.currentTarget as HTMLInputElement).value))} />
        </>
      )}
      <p class="muted" data-testid="replay-at">
        {history && history.changes.length > 0 && `${clock(Math.max(0, at - first))} after the first edit · ${count} of ${history.changes.length} changes`}
      </p>
      {runs.length > 0 && (
        <div class="timeline-row">
          <span class="timeline-name">Runs</span>
          <div class="timeline-track">
            {runs.map((run) => (
              <button type="button" key={run.id} class={`timeline-marker run ${run.verdict ?? run.status}`}
                style={{ left: percent(run.created_at_ms) }}
                aria-label={`Run by ${run.requested_by} at ${clock(Math.max(0, run.created_at_ms - base))}: ${runSummary(run)}`}
                title={`${run.requested_by}: ${runSummary(run)}`}
                onClick={() => seek(run.created_at_ms)} />
            ))}
          </div>
        </div>
      )}
      <div class="editor" ref={host} />
      {lastRun && (
        <article class="run-output" data-run={lastRun.id}>
          <p>
            Last run before this moment: <strong>{lastRun.requested_by}</strong>, {lastRun.language}: {runSummary(lastRun)}
          </p>
          {lastRun.stdout ? <pre class="stdout">{lastRun.stdout}</pre> : null}
          {lastRun.stderr ? <pre class="stderr">{lastRun.stderr}</pre> : null}
        </article>
      )}
    </section>
  );
}
