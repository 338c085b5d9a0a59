// The API client. The access token lives only in memory; the refresh token lives only in an
// httpOnly cookie the browser sends to /api/auth, so a page reload restores the session with one
// refresh call and no script can ever read either token from storage.

export type AccountRole = 'candidate' | 'interviewer' | 'reviewer' | 'admin';
export type InterviewRole = 'candidate' | 'interviewer' | 'observer' | 'reviewer';

export type Me =
  | {
      kind: 'user';
      id: string;
      email: string;
      display_name: string;
      role: AccountRole;
      email_verified?: boolean;
      /** The zone email to them is written in; null until set. */
      time_zone?: string | null;
    }
  | { kind: 'guest'; id: string; display_name: string; interview_id: string };

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: FieldError[] = [],
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The message for one field, if the server named it. */
  fieldMessage(field: string): string | undefined {
    return this.fields.find((f) => f.field === field)?.message;
  }
}

interface SessionResponse {
  access_token: string;
  expires_in: number;
  me: Me;
}

let accessToken: string | null = null;
let refreshing: Promise<Me | null> | null = null;

/** Turns any failed response into an ApiError, whatever its body. */
export async function errorFrom(response: Response): Promise<ApiError> {
  try {
    const body = await response.json();
    const error = body?.error;
    if (error && typeof error.code === 'string') {
      return new ApiError(response.status, error.code, String(error.message ?? ''), error.fields ?? []);
    }
  } catch {
    // Not JSON: fall through to a generic error.
  }
  return new ApiError(response.status, 'http_error', `The server answered ${response.status}.`);
}

async function send(method: string, path: string, body?: unknown, keepalive = false): Promise<Response> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (accessToken) headers.authorization = `Bearer ${accessToken}`;
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      keepalive,
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
  }
}

/** Calls the API; on an expired access token, refreshes the session once and retries. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response = await send(method, path, body);
  if (response.status === 401 && accessToken && !path.startsWith('/api/auth/')) {
    if (await refreshSession()) response = await send(method, path, body);
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/**
 * Sends a small request that outlives the page (a save as the tab closes): no refresh, no
 * answer; the browser delivers it after the page is gone.
 */
export function sendBeforeLeaving(method: string, path: string, body: unknown): void {
  void send(method, path, body, true).catch(() => undefined);
}

/**
 * The access token for a socket that authenticates in its first message; `renew` trades the
 * refresh cookie for a new one first (after the server said the old one expired).
 */
export async function socketToken(renew = false): Promise<string | null> {
  if (renew || !accessToken) await refreshSession();
  return accessToken;
}

/** Fetches a binary resource (a snapshot) with the session, as a blob. */
export async function apiBlob(path: string): Promise<Blob> {
  let response = await send('GET', path);
  if (response.status === 401 && accessToken) {
    if (await refreshSession()) response = await send('GET', path);
  }
  if (!response.ok) throw await errorFrom(response);
  return await response.blob();
}

function adopt(session: SessionResponse): Me {
  accessToken = session.access_token;
  return session.me;
}

async function refreshOnce(): Promise<Me | null> {
  const response = await send('POST', '/api/auth/refresh', {});
  if (!response.ok) {
    accessToken = null;
    return null;
  }
  return adopt((await response.json()) as SessionResponse);
}

/**
 * Exchanges the refresh cookie for a new session. Refresh tokens are single-use, and a second
 * use looks like theft to the server, which then ends the session: concurrent callers in this tab
 * share one request, and tabs take turns through a Web Lock, so the tab that waited sends the
 * cookie the other one just rotated.
 */
export function refreshSession(): Promise<Me | null> {
  refreshing ??= (async () => {
    try {
      const locks = typeof navigator === 'undefined' ? undefined : navigator.locks;
      return locks ? await locks.request('sightline-refresh', refreshOnce) : await refreshOnce();
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function signIn(email: string, password: string): Promise<Me> {
  return adopt(await api<SessionResponse>('POST', '/api/auth/login', { email, password }));
}

export async function register(email: string, password: string, displayName: string): Promise<void> {
  await api('POST', '/api/auth/register', { email, password, display_name: displayName });
}

/** Asks for an emailed link that sets a new password (the answer never says whether the address has an account). */
export async function forgotPassword(email: string): Promise<string> {
  const answer = await api<{ message: string }>('POST', '/api/auth/password/forgot', { email });
  return answer.message;
}

/** Sets a new password with the token of an emailed link. */
export async function resetPassword(token: string, password: string): Promise<void> {
  await api('POST', '/api/auth/password/reset', { token, password });
}

export async function signOut(): Promise<void> {
  try {
    await api('POST', '/api/auth/logout', {});
  } finally {
    accessToken = null;
  }
}

/** Redeems an invite: a guest session (returns Me) or a link to the signed-in account. */
export async function redeemInvite(token: string): Promise<{ me?: Me; interviewId: string }> {
  const result = await api<SessionResponse | { interview_id: string }>('POST', '/api/invites/redeem', {
    token,
  });
  if ('access_token' in result) {
    const me = adopt(result);
    return { me, interviewId: me.kind === 'guest' ? me.interview_id : '' };
  }
  return { interviewId: result.interview_id };
}
