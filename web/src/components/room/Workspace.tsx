// The room's workspace, with the video grid: the shared editor (CodeMirror bound to the
// interview's Yjs document, everyone's cursors in their colour with their name), the shared
// language, Run with optional input, and every run's output as everyone in the room sees it.
// Observers and reviewers see it all read-only. Ctrl/Cmd+Enter in the editor runs the code.

import { useEffect, useRef, useState } from 'preact/hooks';
import { EditorView, basicSetup } from 'codemirror';
import { Compartment, EditorState } from '@codemirror/state';
import { ViewPlugin, keymap } from '@codemirror/view';
import * as Y from 'yjs';
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next';
import { api } from '../../api';
import { ErrorAlert } from '../ui';
import { Questions } from './Questions';
import { cspNonce, highlighting, readOnly } from '../../editor';
import {
  type EditorNotice,
  type RunView,
  type Welcome,
  WorkspaceConnection,
  mergeRun,
  noticeAfterWelcome,
  runSummary,
} from '../../workspace';

/**
 * y-codemirror.next colours other people's cursors and selections with inline `style`
 * attributes, which our Content Security Policy refuses (as it should any inline style); this
 * applies the same declarations through the CSSOM, which the policy allows.
 */
const presenceColours = ViewPlugin.fromClass(
  class {
    private readonly observer: MutationObserver;

    constructor(view: EditorView) {
      const apply = () => {
        for (const el of view.dom.querySelectorAll<HTMLElement>('.cm-ySelection, .cm-ySelectionCaret, .cm-yLineSelection')) {
          const wanted = el.getAttribute('style');
          if (wanted && el.dataset.applied !== wanted) {
            el.style.cssText = wanted;
            el.dataset.applied = el.getAttribute('style') ?? '';
          }
        }
      };
      this.observer = new MutationObserver(apply);
      this.observer.observe(view.dom, { subtree: true, childList: true, attributes: true, attributeFilter: ['style'] });
      apply();
    }

    destroy() {
      this.observer.disconnect();
    }
  },
);

export function Workspace({ interviewId, manage }: { interviewId: string; manage: boolean }) {
  // A new generation starts over from the server's copy of the document.
  const [generation, setGeneration] = useState(0);
  return (
    <WorkspaceEditor key={generation} interviewId={interviewId} manage={manage}
      onReset={() => setGeneration((g) => g + 1)} />
  );
}

function WorkspaceEditor({ interviewId, manage, onReset }: { interviewId: string; manage: boolean; onReset: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const [welcome, setWelcome] = useState<Welcome | null>(null);
  const [connected, setConnected] = useState(false);
  const [language, setLanguage] = useState<string | null>(null);
  const [runs, setRuns] = useState<RunView[]>([]);
  const [stdin, setStdin] = useState('');
  const [showInput, setShowInput] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<EditorNotice | null>(null);
  const [starting, setStarting] = useState(false);
  const [revealedTick, setRevealedTick] = useState(0);
  const connection = useRef<WorkspaceConnection | null>(null);
  const view = useRef<EditorView | null>(null);
  const compartments = useRef({ language: new Compartment(), readOnly: new Compartment() });
  const runRef = useRef<() => void>(() => {});

  useEffect(() => {
    const conn = new WorkspaceConnection(interviewId, {
      welcome: (w) => {
        setWelcome(w);
        setNotice(noticeAfterWelcome);
        // A (re)connection may have missed a notice: the questions are fetched again.
        setRevealedTick((n) => n + 1);
        view.current?.dispatch({ effects: compartments.current.readOnly.reconfigure(readOnly(!w.can_edit)) });
      },
      run: (run) => setRuns((current) => mergeRun(current, run)),
      error: (code, message) => {
        if (code === 'read_only') return;
        setNotice({ code, message });
      },
      status: setConnected,
      reset: onReset,
      questionRevealed: () => setRevealedTick((n) => n + 1),
    });
    connection.current = conn;
    const undoManager = new Y.UndoManager(conn.text);
    const { language: langC, readOnly: roC } = compartments.current;
    const editor = new EditorView({
      parent: host.current ?? undefined,
      state: EditorState.create({
        doc: conn.text.toString(),
        extensions: [
          keymap.of([
            ...yUndoManagerKeymap,
            { key: 'Mod-Enter', run: () => (runRef.current(), true) },
          ]),
          cspNonce(),
          basicSetup,
          presenceColours,
          langC.of([]),
          roC.of(readOnly(true)),
          EditorView.contentAttributes.of({ 'aria-label': 'Shared code editor' }),
          yCollab(conn.text, conn.awareness, { undoManager }),
        ],
      }),
    });
    view.current = editor;
    const onMeta = () => setLanguage(conn.meta.get('language') ?? null);
    conn.meta.observe(onMeta);
    onMeta();
    api<RunView[]>('GET', `/api/interviews/${encodeURIComponent(interviewId)}/runs`)
      .then((list) => setRuns((current) => list.reduce(mergeRun, current)))
      .catch(setError);
    return () => {
      conn.meta.unobserve(onMeta);
      editor.destroy();
      conn.close();
      connection.current = null;
      view.current = null;
    };
  }, [interviewId]);

  const current = language ?? welcome?.default_language ?? 'python';
  useEffect(() => {
    view.current?.dispatch({ effects: compartments.current.language.reconfigure(highlighting(current)) });
  }, [current]);

  const canRun = Boolean(welcome?.can_run && welcome.execution_available);
  const run = async () => {
    if (!canRun || starting) return;
    setStarting(true);
    setError(null);
    try {
      const started = await api<RunView>('POST', `/api/interviews/${encodeURIComponent(interviewId)}/runs`, { stdin });
      setRuns((list) => mergeRun(list, started));
    } catch (err) {
      setError(err);
    } finally {
      setStarting(false);
    }
  };
  runRef.current = () => void run();

  const latest = runs[0];
  return (
    <section class="workspace card" aria-labelledby="workspace-heading">
      <div class="workspace-bar">
        <h2 id="workspace-heading">Code</h2>
        <label>
          Language{' '}
          <select value={current} disabled={!welcome?.can_edit}
            onChange={(e) => connection.current?.meta.set('language', (e.currentTarget as HTMLSelectElement).value)}>
            {(welcome?.languages ?? []).map((l) => (
              <option key={l.id} value={l.id}>
                {l.name}
              </option>
            ))}
          </select>
        </label>
        {welcome?.can_run && (
          <>
            <button type="button" class="secondary small" aria-expanded={showInput} aria-controls="run-input"
              onClick={() => setShowInput(!showInput)}>
              Input
            </button>
            <button type="button" onClick={() => void run()} disabled={!canRun || starting}
              title={welcome.execution_available ? 'Run (Ctrl+Enter)' : 'Code execution is off on this server'}>
              Run
            </button>
          </>
        )}
        {!welcome?.can_edit && welcome && <span class="badge">Read-only</span>}
        {!connected && <span class="badge" role="status">Connecting…</span>}
      </div>
      {showInput && (
        <label id="run-input" class="run-input">
          Input (stdin)
          <textarea rows={3} value={stdin} onInput={(e) => setStdin((e.currentTarget as HTMLTextAreaElement).value)} />
        </label>
      )}
      <Questions interviewId={interviewId} manage={manage} revealedTick={revealedTick}
        editorText={() => view.current?.state.doc.toString() ?? ''} />
      <div class="editor" ref={host} data-testid="editor" />
      {notice && (
        <p class="notice" role="status">
          {notice.message}{' '}
          <button type="button" class="secondary small" onClick={() => setNotice(null)}>
            OK
          </button>
        </p>
      )}
      <ErrorAlert error={error} />
      <div class="run-output" aria-live="polite" data-testid="run-output">
        {latest && (
          <article data-run={latest.id} data-status={latest.status}>
            <p>
              <strong>{latest.requested_by}</strong> ran {latest.language}: {runSummary(latest)}
            </p>
            {latest.stdout ? <pre class="stdout">{latest.stdout}</pre> : null}
            {latest.stderr ? <pre class="stderr">{latest.stderr}</pre> : null}
          </article>
        )}
        {runs.length > 1 && (
          <details>
            <summary>Earlier runs ({runs.length - 1})</summary>
            <ul>
              {runs.slice(1).map((r) => (
                <li key={r.id}>
                  {new Date(r.created_at_ms).toLocaleTimeString()} — {r.requested_by}, {r.language}: {runSummary(r)}
                </li>
              ))}
            </ul>
          </details>
        )}
      </div>
    </section>
  );
}
