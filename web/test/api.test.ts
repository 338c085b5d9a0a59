import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, api, errorFrom, refreshSession, signIn } from '../src/api';

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

const session = (token: string) => ({
  access_token: token,
  expires_in: 900,
  me: { kind: 'user', id: 'u1', email: 'a@example.com', display_name: 'A', role: 'candidate' },
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('errorFrom', () => {
  it('reads our error format, fields included', async () => {
    const error = await errorFrom(
      json(422, {
        error: { code: 'validation_failed', message: 'email: bad', fields: [{ field: 'email', message: 'bad' }] },
      }),
    );
    expect(error).toBeInstanceOf(ApiError);
    expect(error.code).toBe('validation_failed');
    expect(error.fieldMessage('email')).toBe('bad');
  });

  it('survives a body that is not ours', async () => {
    const error = await errorFrom(new Response('<html>proxy error</html>', { status: 502 }));
    expect(error.status).toBe(502);
    expect(error.code).toBe('http_error');
  });
});

describe('api', () => {
  it('refreshes once on 401 and retries with the new token', async () => {
    const calls: { url: string; auth: string | undefined }[] = [];
    const responses = [json(200, session('old')), json(401, { error: { code: 'unauthenticated', message: 'x' } }),
      json(200, session('new')), json(200, { ok: true })];
    vi.stubGlobal('fetch', vi.fn(async (url: string, init: RequestInit) => {
      calls.push({ url, auth: (init.headers as Record<string, string>).authorization });
      return responses.shift() ?? json(500, {});
    }));
    await signIn('a@example.com', 'pw');
    await expect(api('GET', '/api/me')).resolves.toEqual({ ok: true });
    expect(calls.map((c) => c.url)).toEqual(['/api/auth/login', '/api/me', '/api/auth/refresh', '/api/me']);
    expect(calls[1].auth).toBe('Bearer old');
    expect(calls[3].auth).toBe('Bearer new');
  });

  it('shares one refresh between concurrent callers (refresh tokens are single-use)', async () => {
    const fetchMock = vi.fn(async () => json(200, session('t')));
    vi.stubGlobal('fetch', fetchMock);
    const [a, b] = await Promise.all([refreshSession(), refreshSession()]);
    expect(a).toEqual(b);
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it('takes turns with other tabs through a Web Lock', async () => {
    const request = vi.fn(async (_name: string, callback: () => Promise<unknown>) => callback());
    vi.stubGlobal('navigator', { locks: { request } });
    vi.stubGlobal('fetch', vi.fn(async () => json(200, session('t'))));
    await refreshSession();
    expect(request).toHaveBeenCalledWith('sightline-refresh', expect.any(Function));
  });

  it('turns a network failure into a readable error', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => {
      throw new TypeError('Failed to fetch');
    }));
    await expect(api('GET', '/api/me')).rejects.toMatchObject({ code: 'network' });
  });
});
