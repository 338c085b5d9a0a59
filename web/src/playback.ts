// The reviewer player's timing: every recorded take on one session clock (milliseconds since the
// recording started), from the manifest the recorder wrote.
//
// A take starts at `start_ms` on the session clock; inside it, its file's time is the sender's
// media clock. `anchors` pair the two every few seconds, so the player follows a sender whose
// clock runs a little fast or slow instead of drifting away over a long recording.

export interface Anchor {
  media_ms: number;
  session_ms: number;
}

export interface Gap {
  start_ms: number;
  end_ms: number;
}

export interface Take {
  id: string;
  participant: string;
  source: string;
  kind: 'audio' | 'video';
  codec: string;
  start_ms: number;
  end_ms: number | null;
  anchors: Anchor[];
  gaps: Gap[];
  file: string | null;
}

export interface ManifestParticipant {
  identity: string;
  name: string;
  role: string;
  phone_of?: string;
}

export interface TimelineEvent {
  at_ms: number;
  kind: 'joined' | 'left' | 'chat' | string;
  participant: string;
  text?: string;
}

export interface Manifest {
  version: number;
  recording: string;
  status: 'recording' | 'complete' | 'interrupted';
  started_at_ms: number;
  duration_ms: number | null;
  participants: ManifestParticipant[];
  tracks: Take[];
  events: TimelineEvent[];
  /** When nothing was recorded: the server recording it stopped and another one went on. */
  interruptions?: Gap[];
}

/** How far a media element may stray from where the clock says before it is put back. */
export const SYNC_TOLERANCE_MS = 100;

/**
 * Where in a take's file (media milliseconds) a session time falls, or null when the take does
 * not cover it. Between anchors the mapping is linear; before the first, the take's start
 * defines it; after the last, time runs at the last stretch's rate.
 */
export function mediaTimeAt(take: Take, sessionMs: number): number | null {
  const end = take.end_ms ?? Number.POSITIVE_INFINITY;
  if (sessionMs < take.start_ms || sessionMs > end) return null;
  const anchors = take.anchors.length > 0 ? take.anchors : [{ media_ms: 0, session_ms: take.start_ms }];
  let before = anchors[0]!;
  let after: Anchor | undefined;
  for (const anchor of anchors) {
    if (anchor.session_ms <= sessionMs) before = anchor;
    else {
      after = anchor;
      break;
    }
  }
  if (sessionMs < before.session_ms) return Math.max(0, sessionMs - take.start_ms);
  if (!after) return before.media_ms + (sessionMs - before.session_ms);
  const span = after.session_ms - before.session_ms;
  const rate = span > 0 ? (after.media_ms - before.media_ms) / span : 1;
  return before.media_ms + (sessionMs - before.session_ms) * rate;
}

/** The recording's length on the session clock. */
export function sessionLength(manifest: Manifest): number {
  const ends = manifest.tracks.map((t) => t.end_ms ?? t.start_ms);
  return Math.max(manifest.duration_ms ?? 0, ...ends, 0);
}

/** Whether an element at `currentMs` should be moved to `wantedMs`. */
export function needsSeek(currentMs: number, wantedMs: number): boolean {
  return Math.abs(currentMs - wantedMs) > SYNC_TOLERANCE_MS;
}

/** Drift an element may keep while playing: below what a viewer notices between lips and voice. */
export const IN_STEP_MS = 20;
/** Drift a playing element is caught up on by its rate; beyond it, it is seeked. */
export const CATCH_UP_LIMIT_MS = 1_000;
/** The most a catching-up element's rate differs from the clock's (10%: inaudible with pitch kept). */
const MAX_NUDGE = 0.1;
/** Drift is worked off at this rate: 50 ms of drift plays 10% fast or slow. */
const NUDGE_PER_MS = MAX_NUDGE / 50;

/** What to do with a playing element: seek it, or play it at a rate. */
export type Correction = { seek: number } | { rate: number };

/**
 * How a playing element at `currentMs` reaches `wantedMs` while the clock runs at `speed`.
 *
 * Seeking a video element is not instant: it decodes from the keyframe before the new position,
 * and on a busy machine arrives late again, so an element that strays a little is caught up by
 * playing it slightly fast or slow (as live players do), and only one far off, or any element
 * further than `seekBeyondMs` (a person's seek: pass `SYNC_TOLERANCE_MS`), is seeked.
 */
export function correction(
  currentMs: number,
  wantedMs: number,
  speed: number,
  seekBeyondMs: number = CATCH_UP_LIMIT_MS,
): Correction {
  const ahead = currentMs - wantedMs;
  if (Math.abs(ahead) > seekBeyondMs) return { seek: wantedMs };
  if (Math.abs(ahead) <= IN_STEP_MS) return { rate: speed };
  const nudge = Math.max(-MAX_NUDGE, Math.min(MAX_NUDGE, ahead * NUDGE_PER_MS));
  return { rate: speed * (1 - nudge) };
}

/** "m:ss" for a session time. */
export function clock(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}
