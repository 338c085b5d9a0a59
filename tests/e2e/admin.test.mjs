// The admin console's live rooms in a real browser: an admin sees who is in an interview's room
// now, with their connection state, while a participant publishes real media through the SFU,
// and closes the room; the participant is told and leaves.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { FAKE_PARTICIPANT, PASSWORD, launchBrowser, startServer, unlabelledControls, waitFor } from './harness.mjs';

let server;
let browser;
const children = [];

before(async () => {
  server = await startServer();
  server.createUser('ada@example.com', 'Ada Admin', 'admin');
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  browser = await launchBrowser();
}, { timeout: 60_000 });

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await browser?.close();
  await server?.stop();
}, { timeout: 60_000 });

test('an admin sees who is in a room now and closes it', { timeout: 120_000 }, async () => {
  const created = await server.schedule('ivy@example.com', 'Live round', [
    { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
  ]);
  const id = created.interview.id;
  // Ivy is in the room, publishing real Opus and VP8 (our Rust test participant).
  const ivy = spawn(FAKE_PARTICIPANT, ['--base', server.base, '--email', 'ivy@example.com', '--interview', id, '--seconds', '120'], {
    // Its removal ends it with an error; no backtrace for that.
    env: { ...process.env, SIGHTLINE_FAKE_PASSWORD: PASSWORD, RUST_BACKTRACE: '0' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(ivy);
  const ivyExited = new Promise((resolve) => ivy.once('exit', (code) => resolve(code)));

  const context = await browser.newContext();
  const page = await context.newPage();
  await server.signIn(page, 'ada@example.com');
  await page.getByRole('link', { name: 'Live rooms' }).click();
  await page.getByRole('heading', { name: 'Live rooms' }).waitFor();
  assert.deepEqual(await unlabelledControls(page), []);
  // The list refreshes itself: Ivy shows up once she is in, connected, with her tracks.
  const row = page.getByRole('row').filter({ hasText: 'Live round' });
  await row.getByText('Ivy Interviewer, interviewer: Connected').waitFor({ timeout: 60_000 });
  await waitFor('her tracks', async () => /[1-9]\d* tracks/.test(await row.textContent()), 30_000);

  page.once('dialog', (dialog) => dialog.accept());
  await row.getByRole('button', { name: 'Close the room of Live round' }).click();
  await page.getByText('The room of "Live round" was closed.').first().waitFor();
  // She is told and leaves (the test participant stops when it is removed).
  const code = await Promise.race([ivyExited, new Promise((r) => setTimeout(() => r('still running'), 30_000))]);
  assert.notEqual(code, 'still running', 'the participant left the room');
  await waitFor(
    'the room to show nobody',
    async () => (await page.getByText('Ivy Interviewer, interviewer').count()) === 0,
    30_000,
  );
  await context.close();
});
