// The shared editor's connection: a Yjs document kept in step with the server's over
// /api/interviews/{id}/workspace/socket, speaking the y-protocols messages (sync and presence)
// in binary frames; JSON text frames carry the welcome (what we may do), runs and errors.
//
// The server owns the document and decides who may write; this side only mirrors it. After a
// drop it reconnects and the two sides exchange what each lacks (sync step 1 and 2 both ways),
// so nothing typed offline is lost. If the server refused our edits outright (the document is
// at its size limit), our copy has text the server will never take: we start over from its copy.

import * as Y from 'yjs';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as syncProtocol from 'y-protocols/sync';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { socketToken } from './api';
import { backoffMs } from './rtc';

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
const MSG_QUERY_AWARENESS = 3;

/** The origin of changes that came from the server (not to be sent back). */
const REMOTE = Symbol('remote');

export interface LanguageInfo {
  id: string;
  name: string;
}

export interface Welcome {
  can_edit: boolean;
  can_run: boolean;
  execution_available: boolean;
  languages: LanguageInfo[];
  default_language: string;
  you: { name: string; color: string };
}

export type RunStatus = 'queued' | 'running' | 'finished' | 'failed';
export type Verdict = 'ok' | 'failed' | 'time_limit_exceeded' | 'memory_limit_exceeded' | 'output_limit_exceeded';

export interface RunView {
  id: string;
  requested_by: string;
  language: string;
  source: string;
  stdin: string;
  status: RunStatus;
  verdict: Verdict | null;
  exit_code: number | null;
  signal: number | null;
  stdout: string | null;
  stderr: string | null;
  duration_ms: number | null;
  error: string | null;
  created_at_ms: number;
  finished_at_ms: number | null;
}

export const VERDICT_TEXT: Record<Verdict, string> = {
  ok: 'Finished',
  failed: 'Failed',
  time_limit_exceeded: 'Time limit exceeded',
  memory_limit_exceeded: 'Memory limit exceeded',
  output_limit_exceeded: 'Output limit exceeded (output cut)',
};

/** One line saying how a run went. */
export function runSummary(run: RunView): string {
  if (run.status === 'queued') return 'Queued: waiting for a free runner…';
  if (run.status === 'running') return 'Running…';
  if (run.status === 'failed') return `Could not run: ${run.error ?? 'unknown error'}`;
  const verdict = run.verdict ? VERDICT_TEXT[run.verdict] : 'Finished';
  const parts = [verdict];
  if (run.exit_code !== null) parts.push(`exit code ${run.exit_code}`);
  if (run.signal !== null) parts.push(`signal ${run.signal}`);
  if (run.duration_ms !== null) parts.push(`${run.duration_ms} ms`);
  return parts.join(' · ');
}

/** `run` added to `runs` (newest first, one entry per run id: a later state replaces an earlier). */
export function mergeRun(runs: RunView[], run: RunView): RunView[] {
  return [run, ...runs.filter((r) => r.id !== run.id)].sort((a, b) => b.created_at_ms - a.created_at_ms);
}

/** What the editor told the person, by the server's error code. */
export interface EditorNotice {
  code: string;
  message: string;
}

/** Codes that say the editor is reconnecting (the document is being moved to its room's node, a
 * token is being renewed, what the person may do changed): a welcome on the new connection
 * answers them, and says what they may do now. */
const CURED_BY_RECONNECTING = new Set(['unavailable', 'unauthenticated', 'access_changed']);

/** The notice to keep showing once the editor has (re)connected. */
export function noticeAfterWelcome(notice: EditorNotice | null): EditorNotice | null {
  return notice && CURED_BY_RECONNECTING.has(notice.code) ? null : notice;
}

export interface WorkspaceEvents {
  welcome(welcome: Welcome): void;
  run(run: RunView): void;
  error(code: string, message: string): void;
  /** Connected and in step (true), or reconnecting (false). */
  status(connected: boolean): void;
  /** Our copy can no longer join the server's: make a fresh connection. */
  reset(): void;
  /** An interviewer revealed a question. */
  questionRevealed(): void;
}

export function workspaceUrl(interviewId: string, location: Location = window.location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/interviews/${encodeURIComponent(interviewId)}/workspace/socket`;
}

export class WorkspaceConnection {
  readonly doc = new Y.Doc();
  readonly text = this.doc.getText('code');
  readonly meta = this.doc.getMap<string>('meta');
  readonly awareness = new awarenessProtocol.Awareness(this.doc);
  private socket: WebSocket | null = null;
  private closed = false;
  private attempts = 0;
  private renewToken = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly interviewId: string,
    private readonly events: WorkspaceEvents,
  ) {
    this.doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin !== REMOTE) this.send(frame(MSG_SYNC, (e) => syncProtocol.writeUpdate(e, update)));
    });
    this.awareness.on('update', ({ added, updated, removed }: AwarenessChange, origin: unknown) => {
      if (origin === REMOTE) return;
      this.sendAwareness([...added, ...updated, ...removed]);
    });
    void this.open();
  }

  close() {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    awarenessProtocol.removeAwarenessStates(this.awareness, [this.doc.clientID], 'close');
    this.socket?.close();
    this.awareness.destroy();
    this.doc.destroy();
  }

  private async open() {
    const token = await socketToken(this.renewToken);
    if (this.closed) return;
    const socket = new WebSocket(workspaceUrl(this.interviewId));
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: 'auth', token: token ?? '' }));
      this.send(frame(MSG_SYNC, (e) => syncProtocol.writeSyncStep1(e, this.doc)));
      this.sendAwareness([this.doc.clientID]);
    };
    socket.onmessage = (event) => {
      if (typeof event.data === 'string') this.onText(event.data);
      else this.onFrame(new Uint8Array(event.data as ArrayBuffer));
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      const others = [...this.awareness.getStates().keys()].filter((id) => id !== this.doc.clientID);
      awarenessProtocol.removeAwarenessStates(this.awareness, others, REMOTE);
      if (this.closed) return;
      this.events.status(false);
      this.timer = setTimeout(() => void this.open(), backoffMs(this.attempts++));
    };
  }

  private onText(data: string) {
    let message: { type?: string; [key: string]: unknown };
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === 'welcome') {
      this.attempts = 0;
      this.renewToken = false;
      const welcome = message as unknown as Welcome;
      this.awareness.setLocalStateField('user', {
        name: welcome.you.name,
        color: welcome.you.color,
        colorLight: `${welcome.you.color}33`,
      });
      this.events.welcome(welcome);
      this.events.status(true);
    } else if (message.type === 'question_revealed') {
      this.events.questionRevealed();
    } else if (message.type === 'run') {
      this.events.run(message.run as RunView);
    } else if (message.type === 'error') {
      const error = message.error as { code: string; message: string };
      if (error.code === 'unauthenticated' || error.code === 'access_changed') this.renewToken = true;
      if (error.code === 'document_too_large' || error.code === 'history_full') {
        this.events.error(error.code, error.message);
        this.events.reset();
        return;
      }
      this.events.error(error.code, error.message);
    }
  }

  private onFrame(buffer: Uint8Array) {
    const decoder = decoding.createDecoder(buffer);
    const encoder = encoding.createEncoder();
    switch (decoding.readVarUint(decoder)) {
      case MSG_SYNC:
        encoding.writeVarUint(encoder, MSG_SYNC);
        syncProtocol.readSyncMessage(decoder, encoder, this.doc, REMOTE);
        if (encoding.length(encoder) > 1) this.send(encoding.toUint8Array(encoder));
        break;
      case MSG_AWARENESS:
        awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(decoder), REMOTE);
        break;
      case MSG_QUERY_AWARENESS:
        this.sendAwareness([this.doc.clientID]);
        break;
    }
  }

  private sendAwareness(clients: number[]) {
    // Only our own client's presence is ours to send.
    const own = clients.filter((id) => id === this.doc.clientID);
    if (own.length === 0) return;
    this.send(frame(MSG_AWARENESS, (e) =>
      encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(this.awareness, own))));
  }

  private send(bytes: Uint8Array) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(bytes);
  }
}

interface AwarenessChange {
  added: number[];
  updated: number[];
  removed: number[];
}

function frame(type: number, write: (encoder: encoding.Encoder) => void): Uint8Array {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, type);
  write(encoder);
  return encoding.toUint8Array(encoder);
}
