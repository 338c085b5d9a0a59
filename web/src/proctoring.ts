// Proctoring as people see it: what each kind of event means, in words that describe what was
// seen and never accuse, and the shapes of the proctoring API.

/** Whether the room is proctored, and which candidates present have not agreed yet. */
export interface ProctoringNotice {
  on: boolean;
  needs_consent: string[];
  retention_days: number;
}

/** A prompt to a candidate about their own setup. */
export type ProctoringHint = 'face_not_visible' | 'camera_dark' | 'camera_frozen' | 'video_stopped' | 'phone_moved';

const HINTS: Record<ProctoringHint, string> = {
  face_not_visible: 'We can’t see your face. Check the light in front of you and that your camera points at you.',
  camera_dark: 'Your camera looks dark. Is something covering it, or is the light off?',
  camera_frozen: 'Your camera’s picture isn’t changing. You may need to turn it off and on again.',
  video_stopped: 'Your camera’s video stopped reaching us. Check that it is on and connected.',
  phone_moved: 'Your phone’s view has changed. Please put it back so it shows your desk and hands.',
};

/** What a candidate is told for a hint: about their setup, never an accusation. */
export function hintText(hint: ProctoringHint): string {
  return HINTS[hint] ?? 'Please check your camera.';
}

/** One event as the room's interviewers and reviewers see it live. */
export interface LiveEvent {
  id: string;
  kind: string;
  severity: 'info' | 'notice' | 'review';
  participant: string;
  track: string;
  started_at_ms: number;
  ended_at_ms: number | null;
  snapshot: boolean;
}

/** One stored event (`GET /api/interviews/{id}/proctoring`). */
export interface StoredEvent {
  id: string;
  interview_id: string;
  participant_id: string;
  track_id: string;
  source: 'camera' | 'phone';
  kind: string;
  severity: 'info' | 'notice' | 'review';
  started_at_ms: number;
  ended_at_ms: number | null;
  detector: string;
  thresholds: string;
  peak_score: number | null;
  snapshots: number;
  verdict: 'confirmed' | 'dismissed' | null;
  review_note: string | null;
  reviewed_by: string | null;
  reviewed_at: number | null;
}

export interface KindSummary {
  kind: string;
  total: number;
  unreviewed: number;
  confirmed: number;
  dismissed: number;
}

export interface ProctoringView {
  enabled: boolean;
  require_screen_share: boolean;
  running: boolean;
  detector: string;
  events: StoredEvent[];
  summary: KindSummary[];
}

const LABELS: Record<string, string> = {
  face_absent: 'No face visible',
  multiple_faces: 'More than one face',
  camera_dark: 'Camera dark',
  camera_frozen: 'Picture not changing',
  feed_lost: 'Video stopped',
  side_view_changed: 'Phone view changed',
  side_view_person: 'Another face on the phone view',
  checks_unavailable: 'Face checks off',
  screen_share_stopped: 'Screen sharing stopped',
};

const EXPLANATIONS: Record<string, string> = {
  face_absent: 'The camera showed no face. The person may have stepped away, or the light may be poor.',
  multiple_faces: 'The camera showed more than one face. It may be a person nearby, a photo or a screen.',
  camera_dark: 'The picture was dark: a covered lens or the lights off.',
  camera_frozen: 'Frames kept arriving but the picture did not change: a still image or a looped video.',
  feed_lost: 'No video arrived although the camera was on.',
  side_view_changed: 'The phone’s view differed from what it showed at the start: moved, covered or pointed away.',
  side_view_person: 'A face appeared on the phone’s view that was not there at the start.',
  checks_unavailable:
    'The face detector could not see this person’s face reliably, or their video could not be decoded, so ' +
    'these checks were switched off for them. This is a limit of the checks, not something the candidate did.',
  screen_share_stopped: 'The candidate stopped sharing their screen, which this interview asks for.',
};

/** A short, neutral name for an event kind. */
export function kindLabel(kind: string): string {
  return LABELS[kind] ?? kind.replace(/_/g, ' ');
}

/** What an event kind means, for a tooltip or a reviewer. */
export function kindExplanation(kind: string): string {
  return EXPLANATIONS[kind] ?? '';
}

/** "12 s", "1 min 5 s", or "ongoing". */
export function spanText(startedMs: number, endedMs: number | null): string {
  if (endedMs === null) return 'ongoing';
  const seconds = Math.max(0, Math.round((endedMs - startedMs) / 1000));
  if (seconds < 60) return `${seconds} s`;
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

/** A stored event as the live panel shows it. */
export function liveFrom(event: StoredEvent): LiveEvent {
  return {
    id: event.id,
    kind: event.kind,
    severity: event.severity,
    participant: event.participant_id,
    track: event.track_id,
    started_at_ms: event.started_at_ms,
    ended_at_ms: event.ended_at_ms,
    snapshot: event.snapshots > 0,
  };
}

/** The URL of an event's first snapshot (fetch it with the session: it needs the bearer token). */
export function snapshotPath(interview: string, event: string): string {
  return `/api/interviews/${encodeURIComponent(interview)}/proctoring/${encodeURIComponent(event)}/snapshots/0`;
}
