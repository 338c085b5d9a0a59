// The reviewer player: every camera (candidate, phone, interviewers) and screen share of a
// recording playing in step from its manifest, all microphones mixed by the browser, with
// play/pause, seeking, speed, and a timeline of who was there, gaps and chat, joins and leaves.
// One clock (session time) drives every element; each is put back when it strays more than
// 100 ms from where the clock says it should be. Keyboard: Space plays or pauses, the arrows
// move 5 s, Home and End jump to the ends.

import { useEffect, useRef, useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { api } from '../api';
import { RequireSession } from '../app';
import { Lazy } from '../components/Lazy';
import { ProctoringReview } from '../components/ProctoringReview';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import { type ProctoringView, kindLabel } from '../proctoring';
import {
  CATCH_UP_LIMIT_MS,
  type Gap,
  type Manifest,
  SYNC_TOLERANCE_MS,
  type Take,
  clock,
  correction,
  mediaTimeAt,
  needsSeek,
  sessionLength,
} from '../playback';
import { formatWhen } from '../time';
import type { Interview } from '../types';

interface RecordingView {
  recording: { id: string; interview_id: string; status: string };
  manifest: Manifest;
  media: Record<string, string>;
}

const SPEEDS = [0.5, 1, 1.5, 2, 4];
/** Track URLs last ten minutes; they are renewed a little before. */
const URL_REFRESH_MS = 8 * 60 * 1000;
const STEP_MS = 5000;
const SOURCE_LABEL: Record<string, string> = {
  camera: 'camera',
  microphone: 'microphone',
  screen_share: 'screen',
  secondary_camera: 'phone',
};

function PlayerContent({ id }: { id: string }) {
  const [view, setView] = useState<RecordingView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [position, setPosition] = useState(0);
  const [playing, setPlaying] = useState(false);
  const [speed, setSpeed] = useState(1);
  /** The code replay (the editor is a large download: loaded when asked for). */
  const [showCode, setShowCode] = useState(false);
  /** The clock: session time `base` at `at` (performance.now()), advancing at `speed` while playing. */
  const clockState = useRef({ base: 0, at: 0, playing: false, speed: 1 });
  const elements = useRef(new Map<string, HTMLMediaElement>());
  /** The recording's interview, for the header; the player works without it. */
  const [interview, setInterview] = useState<Interview | null>(null);
  /** The interview's proctoring events, when it had any (and the viewer may review them). */
  const [proctoring, setProctoring] = useState<ProctoringView | null>(null);
  const interviewId = view?.recording.interview_id;
  useEffect(() => {
    if (!interviewId) return;
    api<Interview>('GET', `/api/interviews/${encodeURIComponent(interviewId)}`).then(setInterview, () => undefined);
    api<ProctoringView>('GET', `/api/interviews/${encodeURIComponent(interviewId)}/proctoring`).then(
      setProctoring,
      () => undefined,
    );
  }, [interviewId]);

  // Track URLs live ten minutes: fetch fresh ones before they lapse, and when one fails.
  const load = () => api<RecordingView>('GET', `/api/recordings/${encodeURIComponent(id)}`).then(setView, setError);
  useEffect(() => {
    void load();
    const refresh = setInterval(() => void load(), URL_REFRESH_MS);
    return () => clearInterval(refresh);
  }, [id]);
  const lastReload = useRef(0);
  const onMediaError = () => {
    if (Date.now() - lastReload.current < 30_000) return;
    lastReload.current = Date.now();
    void load();
  };

  const manifest = view?.manifest;
  const length = manifest ? sessionLength(manifest) : 0;
  const takes = manifest ? manifest.tracks.filter((t) => t.file && view?.media[t.id]) : [];
  const nameOf = (identity: string) => {
    const person = manifest?.participants.find((p) => p.identity === identity);
    if (!person) return identity;
    if (person.phone_of) {
      const owner = manifest?.participants.find((p) => p.identity === person.phone_of);
      return `${owner?.name ?? person.name} — phone`;
    }
    return person.name;
  };

  /** Proctoring events within this recording, on its session clock. */
  const marks = (proctoring?.events ?? [])
    .map((event) => ({ event, at: event.started_at_ms - (manifest?.started_at_ms ?? 0) }))
    .filter(({ at }) => at >= 0 && at <= length);

  const now = () => {
    const c = clockState.current;
    const elapsed = c.playing ? (performance.now() - c.at) * c.speed : 0;
    return Math.min(length, c.base + elapsed);
  };

  /**
   * Puts every element where the clock says, playing or paused as the clock is. After a person's
   * seek, play or pause (`exact`) an element more than the tolerance away is seeked; while playing
   * one that strays is caught up by its rate.
   */
  const sync = (sessionMs: number, exact: boolean) => {
    const c = clockState.current;
    for (const take of takes) {
      const element = elements.current.get(take.id);
      if (!element) continue;
      const wanted = mediaTimeAt(take, sessionMs);
      element.dataset.active = String(wanted !== null);
      if (wanted === null) {
        if (!element.paused) element.pause();
        continue;
      }
      if (c.playing && !element.paused) {
        const fix = correction(element.currentTime * 1000, wanted, c.speed, exact ? SYNC_TOLERANCE_MS : CATCH_UP_LIMIT_MS);
        if ('seek' in fix) {
          element.currentTime = fix.seek / 1000;
          element.playbackRate = c.speed;
        } else if (element.playbackRate !== fix.rate) {
          element.playbackRate = fix.rate;
        }
      } else {
        if (needsSeek(element.currentTime * 1000, wanted)) element.currentTime = wanted / 1000;
        element.playbackRate = c.speed;
      }
      if (c.playing && element.paused) void element.play().catch(() => undefined);
      if (!c.playing && !element.paused) element.pause();
    }
  };

  const moveTo = (ms: number) => {
    const at = Math.max(0, Math.min(length, ms));
    clockState.current = { ...clockState.current, base: at, at: performance.now() };
    setPosition(at);
    sync(at, true);
  };

  const setPlay = (play: boolean) => {
    const current = now();
    clockState.current = { ...clockState.current, base: current, at: performance.now(), playing: play };
    setPlaying(play);
    sync(current, true);
  };

  const setRate = (rate: number) => {
    const current = now();
    clockState.current = { ...clockState.current, base: current, at: performance.now(), speed: rate };
    setSpeed(rate);
    sync(current, true);
  };

  useEffect(() => {
    if (!manifest) return;
    const timer = setInterval(() => {
      const current = now();
      if (current >= length && clockState.current.playing) {
        setPlay(false);
        return;
      }
      setPosition(current);
      sync(current, false);
    }, 200);
    return () => clearInterval(timer);
  }, [manifest, length]);

  const onKey = (event: KeyboardEvent) => {
    const target = event.target as HTMLElement;
    if (target.tagName === 'SELECT' || target.tagName === 'INPUT') return;
    const keys: Record<string, () => void> = {
      ' ': () => setPlay(!clockState.current.playing),
      ArrowLeft: () => moveTo(now() - STEP_MS),
      ArrowRight: () => moveTo(now() + STEP_MS),
      Home: () => moveTo(0),
      End: () => moveTo(length),
    };
    const action = keys[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  };

  if (isUnavailable(error)) {
    return (
      <Unavailable title="This recording isn't available to you"
        audience="A recording is seen only by its interview's interviewers, the reviewers assigned to it and administrators." />
    );
  }
  if (!view || !manifest) {
    return (
      <section>
        <ErrorAlert error={error} />
        {!error && <Loading what="the recording" />}
      </section>
    );
  }

  const mediaRef = (take: Take) => (element: HTMLMediaElement | null) => {
    if (element) elements.current.set(take.id, element);
    else elements.current.delete(take.id);
  };
  const videos = takes.filter((t) => t.kind === 'video');
  const audios = takes.filter((t) => t.kind === 'audio');
  const people = manifest.participants.filter((p) => manifest.tracks.some((t) => t.participant === p.identity));
  const percent = (ms: number) => `${length > 0 ? (100 * ms) / length : 0}%`;

  return (
    <section class="player" onKeyDown={onKey}>
      <PageTitle>{interview ? `Recording: ${interview.title}` : 'Recording'}</PageTitle>
      <p class="when">
        Recorded {formatWhen(new Date(manifest.started_at_ms).toISOString())} · {clock(length)} long
        {interview && <> · <a href={`/interviews/${interview.id}`}>Interview details</a></>}
      </p>
      <ul class="room-people" aria-label="Participants">
        {manifest.participants
          .filter((p) => !p.phone_of)
          .map((p) => (
            <li key={p.identity} class="present">
              {p.name} <span class="muted">({p.role})</span>
            </li>
          ))}
      </ul>
      {manifest.status === 'interrupted' && (
        <p class="notice" role="status">
          The server stopped during this recording; it holds everything saved until then.
        </p>
      )}
      <InterruptionNotices interruptions={manifest.interruptions ?? []} />
      <div class="grid">
        {videos.map((take) => (
          <figure class="tile" key={take.id}>
            <video ref={mediaRef(take)} src={view.media[take.id]} preload="auto" playsInline muted
              onError={onMediaError}
              data-take={take.id} data-start-ms={take.start_ms}
              aria-label={`${nameOf(take.participant)} ${SOURCE_LABEL[take.source] ?? take.source}`} />
            <figcaption>
              {nameOf(take.participant)} · {SOURCE_LABEL[take.source] ?? take.source}
            </figcaption>
          </figure>
        ))}
      </div>
      {audios.map((take) => (
        <audio key={take.id} ref={mediaRef(take)} src={view.media[take.id]} preload="auto" onError={onMediaError}
          data-take={take.id} data-start-ms={take.start_ms}
          aria-label={`${nameOf(take.participant)} microphone`} />
      ))}
      <div class="actions player-controls">
        <button type="button" onClick={() => setPlay(!playing)}>
          {playing ? 'Pause' : 'Play'}
        </button>
        <span aria-live="off">
          {clock(position)} / {clock(length)}
        </span>
        <label for="player-speed">Speed</label>
        <select id="player-speed" value={String(speed)}
          onChange={(e) => setRate(Number((e.currentTarget as HTMLSelectElement).value))}>
          {SPEEDS.map((s) => (
            <option key={s} value={String(s)}>
              {s}×
            </option>
          ))}
        </select>
      </div>
      <label for="player-position">Position</label>
      <input id="player-position" type="range" min={0} max={Math.max(1, Math.round(length))} step={100}
        value={Math.round(position)} aria-valuetext={clock(position)}
        onInput={(e) => moveTo(Number((e.currentTarget as HTMLInputElement).value))} />
      <section class="timeline" aria-labelledby="timeline-heading">
        <h2 id="timeline-heading">Timeline</h2>
        {people.map((person) => (
          <div class="timeline-row" key={person.identity}>
            <span class="timeline-name">{nameOf(person.identity)}</span>
            <div class="timeline-track">
              {(manifest.interruptions ?? []).map((g) => (
                <div key={`interruption-${g.start_ms}`} class="timeline-interruption"
                  title={`Not recorded ${clock(g.start_ms)}–${clock(g.end_ms)} (the recording server stopped)`}
                  style={{ left: percent(g.start_ms), width: percent(g.end_ms - g.start_ms) }} />
              ))}
              {manifest.tracks
                .filter((t) => t.participant === person.identity)
                .map((t) => (
                  <div key={t.id} class={`timeline-take ${t.kind}`}
                    title={`${SOURCE_LABEL[t.source] ?? t.source} ${clock(t.start_ms)}–${clock(t.end_ms ?? length)}`}
                    style={{ left: percent(t.start_ms), width: percent((t.end_ms ?? length) - t.start_ms) }}>
                    {t.gaps.map((g) => (
                      <div key={g.start_ms} class="timeline-gap" title={`No media ${clock(g.start_ms)}–${clock(g.end_ms)}`}
                        style={{
                          left: `${(100 * (g.start_ms - t.start_ms)) / Math.max(1, (t.end_ms ?? length) - t.start_ms)}%`,
                          width: `${(100 * (g.end_ms - g.start_ms)) / Math.max(1, (t.end_ms ?? length) - t.start_ms)}%`,
                        }} />
                    ))}
                  </div>
                ))}
            </div>
          </div>
        ))}
        <div class="timeline-row">
          <span class="timeline-name">Events</span>
          <div class="timeline-track">
            {manifest.events.map((event, index) => (
              <button type="button" key={index} class={`timeline-marker ${event.kind}`} style={{ left: percent(event.at_ms) }}
                aria-label={`${event.kind === 'chat' ? `Chat from ${nameOf(event.participant)}: ${event.text ?? ''}` : `${nameOf(event.participant)} ${event.kind}`} at ${clock(event.at_ms)}`}
                title={event.kind === 'chat' ? `${nameOf(event.participant)}: ${event.text ?? ''}` : `${nameOf(event.participant)} ${event.kind}`}
                onClick={() => moveTo(event.at_ms)} />
            ))}
          </div>
        </div>
        {marks.length > 0 && (
          <div class="timeline-row">
            <span class="timeline-name">Proctoring</span>
            <div class="timeline-track">
              {marks.map(({ event, at }) => (
                <button type="button" key={event.id} class={`timeline-marker proctoring ${event.severity}`}
                  data-kind={event.kind} style={{ left: percent(at) }}
                  aria-label={`${kindLabel(event.kind)}, ${nameOf(event.participant_id)}, at ${clock(at)}`}
                  title={`${kindLabel(event.kind)} — ${nameOf(event.participant_id)} at ${clock(at)}`}
                  onClick={() => moveTo(at)} />
              ))}
            </div>
          </div>
        )}
      </section>
      <button type="button" class="secondary" aria-expanded={showCode} onClick={() => setShowCode(!showCode)}>
        {showCode ? 'Hide the code' : 'Show the code, in step'}
      </button>
      {showCode && (
        <Lazy load={() => import('../components/CodeReplay').then((m) => m.CodeReplay)} what="the code"
          props={{
            interviewId: view.recording.interview_id,
            atMs: manifest.started_at_ms + position,
            startMs: manifest.started_at_ms,
            lengthMs: length,
            onSeek: moveTo,
          }} />
      )}
      {proctoring && manifest && (proctoring.enabled || proctoring.events.length > 0) && (
        <ProctoringReview interview={view.recording.interview_id} view={proctoring} nameOf={nameOf}
          onChange={setProctoring}
          canSeek={(event) => {
            const at = event.started_at_ms - manifest.started_at_ms;
            return at >= 0 && at <= length;
          }}
          onSeek={(event) => moveTo(Math.max(0, event.started_at_ms - manifest.started_at_ms))} />
      )}
    </section>
  );
}

export function Player() {
  const { params } = useRoute();
  return (
    <RequireSession>
      <PlayerContent id={params.id} />
    </RequireSession>
  );
}

/** What was not recorded because the server recording the interview stopped and another went on. */
export function InterruptionNotices({ interruptions }: { interruptions: Gap[] }) {
  return (
    <>
      {interruptions.map((g) => (
        <p class="notice" role="status" key={`interruption-${g.start_ms}`}>
          Nothing was recorded from {clock(g.start_ms)} to {clock(g.end_ms)}: the server recording this interview
          stopped, and another one went on with it.
        </p>
      ))}
    </>
  );
}
