// The platform spine in a real browser: register and sign in, schedule an interview, see it on
// the dashboard, and open the candidate's invite link in another browser context.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import { PASSWORD, artifacts, launchBrowser, startServer, unlabelledControls } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  browser = await launchBrowser();
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
}, { timeout: 60_000 });

async function signIn(page, email, password = PASSWORD) {
  await page.goto(`${server.base}/signin`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('a new user registers, signs in and sees an empty dashboard', { timeout: 90_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.base}/register`);
  assert.deepEqual(await unlabelledControls(page), []);
  await page.getByLabel('Your name').fill('Nina New');
  await page.getByLabel('Email').fill('nina@example.com');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByText('Your account is ready').waitFor();

  // A wrong password is announced, not silently ignored.
  await signIn(page, 'nina@example.com', 'not the password');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /invalid email or password/);

  await signIn(page, 'nina@example.com');
  await page.getByRole('heading', { name: 'Your interviews' }).waitFor();
  await page.getByText('Nothing scheduled.').waitFor();
  assert.equal(await page.getByRole('link', { name: 'Schedule' }).count(), 0, 'candidates cannot schedule');

  // The session survives a reload (refresh cookie), and signing out ends it.
  await page.reload();
  await page.getByRole('heading', { name: 'Your interviews' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  // Signed out once the page says so (the server has ended the session): a navigation before
  // that would cancel the request, as it would for anyone.
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.goto(`${server.base}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await context.close();
});

test('an interviewer schedules an interview and the candidate opens the invite link', { timeout: 120_000 }, async () => {
  const interviewer = await browser.newContext();
  const page = await interviewer.newPage();
  await signIn(page, 'ivy@example.com');
  await page.getByRole('heading', { name: 'Your interviews' }).waitFor();
  await page.getByRole('link', { name: 'Schedule an interview' }).click();
  await page.getByRole('heading', { name: 'Schedule an interview' }).waitFor();
  assert.deepEqual(await unlabelledControls(page), []);

  const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  const wall = `${tomorrow.getFullYear()}-${pad(tomorrow.getMonth() + 1)}-${pad(tomorrow.getDate())}T10:00`;
  await page.getByLabel('Title').fill('Staff engineer, systems design');
  await page.getByLabel('Date and time').fill(wall);
  await page.getByLabel('Duration (minutes)').fill('45');
  await page.getByLabel('Participant 1 email').fill('casey@example.com');
  await page.getByLabel('Participant 1 name').fill('Casey Candidate');
  await page.getByRole('button', { name: 'Schedule interview' }).click();
  await page.getByRole('heading', { name: 'Interview scheduled' }).waitFor();
  const inviteUrl = await page.getByLabel('Invite link for casey@example.com').inputValue();
  assert.match(inviteUrl, new RegExp(`^${server.base}/join/[A-Za-z0-9_-]{43}$`));
  await page.screenshot({ path: join(artifacts, 'scheduled.png'), fullPage: true });

  await page.getByRole('link', { name: 'Interviews' }).click();
  const upcoming = page.getByRole('region', { name: 'Upcoming' });
  await upcoming.getByRole('link', { name: 'Staff engineer, systems design' }).waitFor();
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });

  // The interviewer sets the interview to record automatically; it sticks.
  await upcoming.getByRole('link', { name: 'Staff engineer, systems design' }).click();
  const autoRecord = page.getByLabel('Record automatically once everyone in the room has agreed');
  await autoRecord.check();
  // The page says when the server has it; only then is a reload expected to show it.
  await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
  await page.reload();
  await page.getByLabel('Record automatically once everyone in the room has agreed').waitFor();
  assert.equal(await page.getByLabel('Record automatically once everyone in the room has agreed').isChecked(), true);
  await page.getByRole('link', { name: 'Interviews' }).click();

  // The candidate, in a browser context of their own, with no account.
  const candidate = await browser.newContext();
  const guest = await candidate.newPage();
  await guest.goto(inviteUrl);
  await guest.getByRole('heading', { name: 'You are invited to an interview' }).waitFor();
  await guest.getByText('Staff engineer, systems design').waitFor();
  await guest.getByText('Ivy Interviewer').waitFor();
  await guest.screenshot({ path: join(artifacts, 'invite.png'), fullPage: true });
  await guest.getByRole('button', { name: 'Continue to the interview' }).click();
  await guest.getByRole('heading', { name: 'Staff engineer, systems design' }).waitFor();
  await guest.getByRole('cell', { name: 'Casey Candidate' }).waitFor();

  // A reload keeps the guest in (refresh cookie), and the room's pre-join screen opens.
  await guest.reload();
  await guest.getByRole('heading', { name: 'Staff engineer, systems design' }).waitFor();
  await guest.getByRole('button', { name: 'Join' }).click();
  await guest.getByRole('heading', { name: 'Ready to join?' }).waitFor();
  await guest.getByRole('button', { name: 'Join room' }).waitFor();
  await guest.screenshot({ path: join(artifacts, 'room.png'), fullPage: true });

  // The link is single-use: anyone else who opens it is told so.
  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  await other.goto(inviteUrl);
  const problem = other.getByRole('alert');
  await problem.waitFor();
  assert.match(await problem.textContent(), /already been used/);

  // The interviewer sees the invite as used.
  await page.getByRole('link', { name: 'Staff engineer, systems design' }).click();
  await page.getByRole('cell', { name: 'used' }).waitFor();

  await Promise.all([interviewer.close(), candidate.close(), stranger.close()]);
});
