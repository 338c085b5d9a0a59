import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import { type OutboxEntry, OutboxTable, messageState } from '../src/pages/AdminOutbox';
import { tokenFromHash } from '../src/pages/ResetPassword';

afterEach(() => {
  document.body.innerHTML = '';
});

const message = (overrides: Partial<OutboxEntry>): OutboxEntry => ({
  id: 'm-1',
  kind: 'password_reset',
  recipient: 'rae@example.com',
  subject: 'Reset your Sightline password',
  created_at: 1_796_000_000,
  attempts: 0,
  next_attempt_at: 1_796_000_000,
  sent_at: null,
  failed_at: null,
  last_error: null,
  ...overrides,
});

describe('the email outbox', () => {
  it('says in words where each message stands', () => {
    expect(messageState(message({}))).toBe('Waiting to be sent');
    expect(messageState(message({ attempts: 2 }))).toMatch(/^Retrying \(attempt 3 at /);
    expect(messageState(message({ attempts: 10, failed_at: 1_796_000_500 }))).toBe('Failed after 10 attempts');
    expect(messageState(message({ attempts: 1, sent_at: 1_796_000_100 }))).toMatch(/^Sent /);
  });

  it('lists messages with their last error, and says when the server sends no email', () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    render(
      <OutboxTable
        view={{
          enabled: false,
          waiting: 1,
          failed: 0,
          messages: [message({ attempts: 1, last_error: 'could not reach the server: refused' })],
        }}
      />,
      root,
    );
    expect(root.textContent).toContain('This server sends no email');
    expect(root.textContent).toContain('1 waiting, 0 failed.');
    const row = root.querySelector('tbody tr');
    expect(row?.querySelector('th')?.textContent).toBe('Reset your Sightline password');
    expect(row?.textContent).toContain('could not reach the server: refused');
  });
});

describe('the reset link', () => {
  it('takes its token from after the #', () => {
    expect(tokenFromHash('#abc_DEF-123')).toBe('abc_DEF-123');
    expect(tokenFromHash('')).toBe('');
  });
});

describe('the address confirmation', async () => {
  const { ConfirmAddress } = await import('../src/pages/Dashboard');
  it('names the address the link went to and offers another', () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    render(<ConfirmAddress email="nina@example.com" />, root);
    expect(root.textContent).toContain('Please confirm your address, nina@example.com');
    expect(root.querySelector('button')?.textContent).toBe('Send me a link');
  });
});
