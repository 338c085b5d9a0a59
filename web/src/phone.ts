// A candidate's phone as a second camera: the pairing calls, the phone's camera, and how the
// room describes a phone's state. The page that uses them is pages/Pair.tsx; the room shows
// the QR code and the phone's tile.

import { api } from './api';
import type { JoinGrant, ParticipantInfo, TrackInfo } from './rtc';

/** What `POST /api/interviews/{id}/phone-pairings` answers, once. */
export interface PairingCreated {
  candidate: string;
  url: string;
  qr_svg: string;
  code: string;
  code_url: string;
  expires_at: string;
}

/** What a phone is shown before it shares anything. */
export interface PairingPreview {
  title: string;
  candidate_name: string;
  interviewers: string[];
  expires_at: string;
}

/** How a phone proves it may pair: the link's token or the typed code. */
export type PairingSecret = { token: string } | { code: string };

export function startPairing(interviewId: string, candidate?: string): Promise<PairingCreated> {
  return api<PairingCreated>(
    'POST',
    `/api/interviews/${encodeURIComponent(interviewId)}/phone-pairings`,
    candidate ? { candidate } : {},
  );
}

export function removePhone(interviewId: string, candidate: string): Promise<void> {
  return api<void>(
    'DELETE',
    `/api/interviews/${encodeURIComponent(interviewId)}/phone-pairings/${encodeURIComponent(candidate)}`,
  );
}

export function inspectPairing(secret: PairingSecret): Promise<PairingPreview> {
  return api<PairingPreview>('POST', '/api/phone/inspect', secret);
}

export async function redeemPairing(secret: PairingSecret): Promise<string> {
  const answer = await api<{ session: string }>('POST', '/api/phone/redeem', secret);
  return answer.session;
}

export async function phoneGrant(session: string): Promise<JoinGrant> {
  const grant = await api<{ room: string; token: string }>('POST', '/api/phone/join', { session });
  return { room: grant.room, token: grant.token };
}

/** Where the phone keeps its session for this tab, so a reload rejoins without a new code. */
const SESSION_KEY = 'sightline-phone-session';

export function rememberSession(pairedWith: string, session: string) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ pairedWith, session }));
}

/** The session this tab paired with `pairedWith` (a link token or "code"), if any. */
export function rememberedSession(pairedWith: string): string | null {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null');
    return stored?.pairedWith === pairedWith && typeof stored.session === 'string' ? stored.session : null;
  } catch {
    return null;
  }
}

export function forgetSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

export type Facing = 'environment' | 'user';

/**
 * What the phone captures: up to 1280×720, at most 15 fps. The phone shows a desk and hands, where
 * detail matters more than motion, and its battery, uplink and the server's checks all pay per
 * frame.
 */
export const PHONE_VIDEO: MediaTrackConstraints = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 15, max: 15 },
};

/** The phone's camera, no microphone: the rear one unless the person picked the front. */
export function openPhoneCamera(facing: Facing): Promise<MediaStream> {
  return navigator.mediaDevices.getUserMedia({
    audio: false,
    video: { facingMode: { ideal: facing }, ...PHONE_VIDEO },
  });
}

/** Keeps the screen on while the camera is shared (where the browser can); returns a release. */
export function keepAwake(): () => void {
  let lock: WakeLockSentinel | null = null;
  let released = false;
  const request = () => {
    if (released || document.visibilityState !== 'visible' || !('wakeLock' in navigator)) return;
    navigator.wakeLock.request('screen').then(
      (sentinel) => {
        // Released while the request was pending: let go at once.
        if (released) void sentinel.release();
        else lock = sentinel;
      },
      () => undefined,
    );
  };
  // The browser drops the lock when the page is hidden; take it again on return.
  document.addEventListener('visibilitychange', request);
  request();
  return () => {
    released = true;
    document.removeEventListener('visibilitychange', request);
    void lock?.release();
  };
}

export type PhoneStatus = 'connected' | 'no_feed' | 'reconnecting' | 'disconnected';

/**
 * A candidate's phone as the room sees it: present with video arriving at the server
 * (connected), present without it (no feed), dropped but within its resume window
 * (reconnecting), or gone after having been there (disconnected). `null`: no phone yet.
 */
export function phoneStatus(
  phone: ParticipantInfo | undefined,
  camera: TrackInfo | undefined,
  seenBefore: boolean,
): PhoneStatus | null {
  if (!phone) return seenBefore ? 'disconnected' : null;
  if (phone.reconnecting) return 'reconnecting';
  if (!camera || camera.stalled || camera.muted) return 'no_feed';
  return 'connected';
}

export const PHONE_STATUS_TEXT: Record<PhoneStatus, string> = {
  connected: 'Phone connected',
  no_feed: 'Phone: no feed',
  reconnecting: 'Phone reconnecting',
  disconnected: 'Phone disconnected',
};
