// Accessibility on every page: axe-core (the engine, run in the page, no network) checks each page
// as the people who use it see it, and the test fails on any serious or critical violation of
// WCAG 2.1 A and AA. Pages are checked once they have shown what they load. The recording player
// and the paired phone's page are checked where their tests open them (recording, phone).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { axeViolations as violations, launchBrowser, startServer } from './harness.mjs';

let server;
let browser;
let created;

before(async () => {
  server = await startServer();
  server.createUser('ada@example.com', 'Ada Admin', 'admin');
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  browser = await launchBrowser();
  created = await server.schedule('ivy@example.com', 'Accessible round', [
    { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
  ]);
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
}, { timeout: 60_000 });

/** Opens `path` and waits for `ready` (a role and name) before checking it. */
async function check(page, path, ready) {
  await page.goto(`${server.base}${path}`);
  await page.getByRole(ready.role, { name: ready.name }).first().waitFor({ timeout: 30_000 });
  const found = await violations(page);
  assert.deepEqual(found, [], `${path}:\n${found.join('\n')}`);
}

test('pages anyone can open have no serious accessibility violation', { timeout: 180_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await check(page, '/signin', { role: 'heading', name: 'Sign in' });
  await check(page, '/register', { role: 'button', name: 'Create account' });
  await check(page, '/forgot-password', { role: 'heading', name: 'Forgot your password?' });
  await check(page, '/reset-password#not-a-real-token', { role: 'heading', name: 'Choose a new password' });
  await check(page, '/verify-email', { role: 'heading', name: 'Confirm your email address' });
  await check(page, '/pair', { role: 'heading', name: /phone/i });
  await check(page, '/no-such-page', { role: 'heading', name: /not found/i });
  const invite = new URL(created.invites[0].url).pathname;
  await check(page, invite, { role: 'heading', name: 'You are invited to an interview' });
  await context.close();
});

test('an interviewer\'s and an admin\'s pages have no serious accessibility violation', { timeout: 300_000 }, async () => {
  const id = created.interview.id;
  const ivyContext = await browser.newContext();
  const ivy = await ivyContext.newPage();
  await server.signIn(ivy, 'ivy@example.com');
  await check(ivy, '/', { role: 'heading', name: 'Your interviews' });
  await check(ivy, '/interviews/new', { role: 'heading', name: /schedule/i });
  await check(ivy, `/interviews/${id}`, { role: 'heading', name: 'Accessible round' });
  await check(ivy, '/questions', { role: 'heading', name: 'Question bank' });
  await check(ivy, `/interviews/${id}/room`, { role: 'button', name: 'Join room' });
  // In the room, with her camera on, the chat and the editor.
  await ivy.getByRole('button', { name: 'Join room' }).click();
  await ivy.getByRole('button', { name: /^Leave/ }).first().waitFor({ timeout: 30_000 });
  const inRoom = await violations(ivy);
  assert.deepEqual(inRoom, [], `in the room:\n${inRoom.join('\n')}`);
  await ivyContext.close();

  const adaContext = await browser.newContext();
  const ada = await adaContext.newPage();
  await server.signIn(ada, 'ada@example.com');
  for (const [path, name] of [
    ['/admin/users', 'Users'],
    ['/admin/recordings', 'Recordings'],
    ['/admin/rooms', 'Live rooms'],
    ['/admin/webhooks', 'Webhooks'],
    ['/admin/outbox', 'Email outbox'],
    ['/admin/candidates', 'Candidate data'],
    ['/admin/audit', 'Audit log'],
    ['/admin/nodes', 'Nodes'],
    ['/admin/scorecards', 'Scorecard templates'],
  ]) {
    await check(ada, path, { role: 'heading', name });
  }
  await adaContext.close();
});
