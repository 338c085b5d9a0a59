import { describe, expect, it } from 'vitest';
import { type RunView, mergeRun, noticeAfterWelcome, runSummary, workspaceUrl } from '../src/workspace';

function run(id: string, created: number, change: Partial<RunView> = {}): RunView {
  return {
    id,
    requested_by: 'Casey',
    language: 'python',
    source: 'print(1)',
    stdin: '',
    status: 'finished',
    verdict: 'ok',
    exit_code: 0,
    signal: null,
    stdout: '1\n',
    stderr: '',
    duration_ms: 31,
    error: null,
    created_at_ms: created,
    finished_at_ms: created + 31,
    ...change,
  };
}

describe('runs as people read them', () => {
  it('says how each run went', () => {
    expect(runSummary(run('a', 1))).toBe('Finished · exit code 0 · 31 ms');
    expect(runSummary(run('a', 1, { status: 'queued', verdict: null }))).toMatch(/^Queued/);
    expect(runSummary(run('a', 1, { verdict: 'time_limit_exceeded', exit_code: null, signal: 9 })))
      .toBe('Time limit exceeded · signal 9 · 31 ms');
    expect(runSummary(run('a', 1, { status: 'failed', verdict: null, error: 'no sandbox' })))
      .toBe('Could not run: no sandbox');
  });

  it('keeps one entry per run, newest first, the latest state winning', () => {
    let runs: RunView[] = [];
    runs = mergeRun(runs, run('old', 1));
    runs = mergeRun(runs, run('new', 2, { status: 'running', verdict: null }));
    runs = mergeRun(runs, run('new', 2));
    expect(runs.map((r) => [r.id, r.status])).toEqual([['new', 'finished'], ['old', 'finished']]);
  });
});

describe('the workspace socket address', () => {
  it('follows the page: wss behind https', () => {
    const at = (href: string) => new URL(href) as unknown as Location;
    expect(workspaceUrl('i d', at('https://sightline.example/x'))).toBe('wss://sightline.example/api/interviews/i%20d/workspace/socket');
    expect(workspaceUrl('i', at('http://127.0.0.1:8080/'))).toBe('ws://127.0.0.1:8080/api/interviews/i/workspace/socket');
  });
});

describe("the editor's notices", () => {
  it('drop what reconnecting answered once the editor is welcomed again, and keep the rest', () => {
    const moving = { code: 'unavailable', message: "the interview's room is being moved; the editor reconnects in a moment" };
    expect(noticeAfterWelcome(moving)).toBeNull();
    expect(noticeAfterWelcome({ code: 'unauthenticated', message: 'sign in again' })).toBeNull();
    expect(noticeAfterWelcome({ code: 'access_changed', message: 'what you may do with the code changed; reconnecting' }))
      .toBeNull();
    const tooLarge = { code: 'document_too_large', message: 'the document is too large' };
    expect(noticeAfterWelcome(tooLarge)).toBe(tooLarge);
    expect(noticeAfterWelcome(null)).toBeNull();
  });
});
