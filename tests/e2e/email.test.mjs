// Email in a real browser with a real SMTP server: someone who forgot their password asks for a
// link on the sign-in page, the link arrives in the SMTP server's mailbox, and following it sets
// a new password they then sign in with; the old password no longer works, nor the link again.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PASSWORD, launchBrowser, startServer, startSmtpSink, unlabelledControls, waitFor } from './harness.mjs';

let sink;
let server;
let browser;

before(async () => {
  sink = await startSmtpSink();
  server = await startServer({
    env: {
      SIGHTLINE__EMAIL__SMTP_URL: sink.url,
      SIGHTLINE__EMAIL__FROM: 'Sightline <interviews@example.com>',
    },
  });
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  browser = await launchBrowser();
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
  await sink?.stop();
}, { timeout: 60_000 });

/** The reset link in a delivered message (quoted-printable soft breaks undone). */
function resetLink(message) {
  const unfolded = message.replace(/=\r?\n/g, '');
  const found = unfolded.match(/(https?:\/\/[^\s"<>]+\/reset-password#[A-Za-z0-9_-]{43})/);
  assert.ok(found, `a reset link in: ${unfolded.slice(0, 2000)}`);
  return found[1];
}

test('a forgotten password is reset through the emailed link', { timeout: 90_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.base}/signin`);
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.getByRole('heading', { name: 'Forgot your password?' }).waitFor();
  assert.deepEqual(await unlabelledControls(page), []);
  await page.getByLabel('Email').fill('ivy@example.com');
  await page.getByRole('button', { name: 'Send the link' }).click();
  await page.getByRole('status').filter({ hasText: 'Check your inbox' }).waitFor();

  await waitFor('the reset message in the mailbox', () => sink.messages().length === 1, 30_000);
  const [message] = sink.messages();
  assert.match(message, /^To: ivy@example\.com/m);
  assert.match(message, /^Subject: Reset your Sightline password/m);
  const link = resetLink(message);
  assert.ok(link.startsWith(`${server.base}/reset-password#`), link);

  await page.goto(link);
  await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  assert.deepEqual(await unlabelledControls(page), []);
  const fresh = 'a brand new passphrase';
  await page.getByLabel('New password (at least 10 characters)').fill(fresh);
  await page.getByLabel('The same password again').fill(fresh);
  await page.getByRole('button', { name: 'Set the new password' }).click();
  await page.getByText('Your new password is set').waitFor();

  // The old password is refused, the new one signs in.
  await page.getByLabel('Email').fill('ivy@example.com');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  await page.getByLabel('Password').fill(fresh);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Your interviews' }).waitFor();

  // The link works once.
  const again = await context.newPage();
  await again.goto(link);
  await again.getByLabel('New password (at least 10 characters)').fill('yet another passphrase');
  await again.getByLabel('The same password again').fill('yet another passphrase');
  await again.getByRole('button', { name: 'Set the new password' }).click();
  const alert = again.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /not valid, was used, or has expired/);
  await context.close();
});
