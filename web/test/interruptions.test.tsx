import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import { InterruptionNotices } from '../src/pages/Player';

afterEach(() => {
  document.body.innerHTML = '';
});

describe('InterruptionNotices', () => {
  it('says what was not recorded when another server went on with a recording', () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    render(<InterruptionNotices interruptions={[{ start_ms: 62_000, end_ms: 71_500 }]} />, root);
    const notices = [...root.querySelectorAll('[role="status"]')];
    expect(notices).toHaveLength(1);
    expect(notices[0].textContent).toContain('Nothing was recorded from 1:02 to 1:11');
  });

  it('says nothing for a recording made in one go', () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    render(<InterruptionNotices interruptions={[]} />, root);
    expect(root.textContent).toBe('');
  });
});
