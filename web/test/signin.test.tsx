import { render } from 'preact';
import { act } from 'preact/test-utils';
import { LocationProvider } from 'preact-iso';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SignIn, safeNext } from '../src/pages/SignIn';

afterEach(() => {
  vi.unstubAllGlobals();
  document.body.innerHTML = '';
});

describe('safeNext', () => {
  it('only returns to paths on this site', () => {
    expect(safeNext('/interviews/1')).toBe('/interviews/1');
    expect(safeNext('//evil.example')).toBe('/');
    expect(safeNext('https://evil.example')).toBe('/');
    expect(safeNext(undefined)).toBe('/');
  });
});

describe('SignIn', () => {
  it('labels its inputs and announces a failed sign-in', async () => {
    vi.stubGlobal('fetch', vi.fn(async () =>
      new Response(JSON.stringify({ error: { code: 'invalid_credentials', message: 'invalid email or password' } }),
        { status: 401 }),
    ));
    const root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => {
      render(<LocationProvider><SignIn /></LocationProvider>, root);
    });
    const email = root.querySelector<HTMLInputElement>('#email');
    const label = root.querySelector('label[for="email"]');
    expect(email).not.toBeNull();
    expect(label?.textContent).toBe('Email');
    expect(root.querySelector('label[for="password"]')?.textContent).toBe('Password');

    await act(async () => {
      root.querySelector('form')?.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));
      await new Promise((resolve) => setTimeout(resolve, 0));
    });
    const alert = root.querySelector('[role="alert"]');
    expect(alert?.textContent).toBe('invalid email or password');
  });
});
