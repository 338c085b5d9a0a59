// The interview room in real browsers: three participants join through the UI (device pickers
// and a live microphone meter before joining), each sees the other two's video with decoded
// frames increasing (media through our SFU), a shared screen reaches the others and goes when
// it stops, a dropped signaling connection resumes without interrupting media, chat reaches the
// others, and a participant who leaves disappears from the others' grid within 5 s.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FAKE_PARTICIPANT, PASSWORD, artifacts, launchBrowser, startServer } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  server.createUser('obi@example.com', 'Obi Interviewer', 'interviewer');
  server.createUser('bot@example.com', 'Rusty Bot', 'interviewer');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The pre-join screen lists the fake devices by name and its meter hears the fake microphone. */
async function checkPreJoin(page, interviewId) {
  await page.goto(`${server.base}/interviews/${interviewId}/room`);
  await page.getByRole('button', { name: 'Join room' }).waitFor();
  const camera = page.getByLabel('Camera', { exact: true });
  const microphone = page.getByLabel('Microphone', { exact: true });
  await page.waitForFunction(() => document.querySelectorAll('#camera-picker option').length > 0);
  assert.match(await camera.locator('option').first().innerText(), /fake/i);
  assert.ok((await microphone.locator('option').count()) > 0, 'microphones are listed');
  // The fake microphone beeps about once a second: the meter must move.
  await page.waitForFunction(
    () => Number(document.querySelector('meter[aria-labelledby="mic-level-label"]')?.value ?? 0) > 0.05,
    null,
    { timeout: 10_000 },
  );
  // Picking a device reopens the preview with it.
  const choice = await camera.locator('option').last().getAttribute('value');
  await camera.selectOption(choice);
  await page.waitForFunction(
    (id) => document.querySelector('video[aria-label="Your camera preview"]')?.srcObject?.getVideoTracks()[0]?.getSettings().deviceId === id,
    choice,
  );
}

/** Decoded frame counts of the remote camera videos on a page. */
function remoteFrames(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('video')]
      .filter((v) => (v.getAttribute('aria-label') ?? '').endsWith("'s camera"))
      .map((v) => v.getVideoPlaybackQuality().totalVideoFrames),
  );
}

/** Remote videos keep decoding: the same elements show more frames 1.5 s later. */
async function assertFramesIncrease(page, count) {
  let last = '';
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const before = await waitForRemoteVideos(page, count);
    await page.waitForTimeout(1500);
    const later = await remoteFrames(page);
    if (later.length === count && later.every((n, i) => n > before[i])) return;
    // An element replaced in between (a track changed) restarts its count: sample again.
    last = `${before} -> ${later}`;
  }
  throw new Error(`remote video frames did not keep increasing: ${last}`);
}

async function waitForRemoteVideos(page, count, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let frames = [];
  while (Date.now() < deadline) {
    frames = await remoteFrames(page);
    if (frames.length === count && frames.every((n) => n > 0)) return frames;
    await page.waitForTimeout(250);
  }
  throw new Error(`expected ${count} playing remote videos, saw frames ${JSON.stringify(frames)}`);
}

test('three participants see and hear each other through the SFU', async () => {
  const created = await server.schedule('ivy@example.com', 'Room test', [
        { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
        { email: 'obi@example.com', role: 'interviewer' },
      ]);
  const interviewId = created.interview.id;

  const ivy = await (await browser.newContext()).newPage();
  const obi = await (await browser.newContext()).newPage();
  const cas = await (await browser.newContext()).newPage();
  // Obi's signaling socket goes through a route the test can cut, as a network drop would, and
  // that records what Obi sends.
  const obiSockets = [];
  const obiSent = [];
  await obi.routeWebSocket(/\/rtc\//, (ws) => {
    const upstream = ws.connectToServer();
    ws.onMessage((message) => {
      obiSent.push(JSON.parse(String(message)));
      upstream.send(message);
    });
    obiSockets.push(ws);
  });

  await server.signIn(ivy, 'ivy@example.com');
  await server.signIn(obi, 'obi@example.com');
  await cas.goto(created.invites[0].url);
  await cas.getByRole('button', { name: 'Continue to the interview' }).click();
  await cas.getByRole('heading', { name: 'Room test' }).waitFor();

  await checkPreJoin(ivy, interviewId);
  await server.enterRoom(ivy, interviewId);
  await server.enterRoom(obi, interviewId);
  await server.enterRoom(cas, interviewId);

  for (const page of [ivy, obi, cas]) {
    await assertFramesIncrease(page, 2);
  }
  // The fake microphones beep: the server hears speech and the grid highlights a speaker.
  await ivy.locator('figure.tile.speaking').first().waitFor({ timeout: 15_000 });
  await ivy.getByRole('status').filter({ hasText: 'Connection: good' }).waitFor({ timeout: 10_000 });
  await ivy.screenshot({ path: join(artifacts, 'room.png'), fullPage: true });

  // A shared screen appears for the others as its own tile, and goes when sharing stops.
  await cas.getByRole('button', { name: 'Share screen' }).click();
  await cas.getByRole('button', { name: 'Stop sharing' }).waitFor();
  const casScreen = ivy.locator(`video[aria-label="Casey Candidate's screen"]`);
  await casScreen.waitFor({ timeout: 15_000 });
  await ivy.waitForFunction(
    () => (document.querySelector(`video[aria-label="Casey Candidate's screen"]`)?.getVideoPlaybackQuality().totalVideoFrames ?? 0) > 0,
    null,
    { timeout: 15_000 },
  );
  await ivy.screenshot({ path: join(artifacts, 'room-screen-share.png'), fullPage: true });
  await cas.getByRole('button', { name: 'Stop sharing' }).click();
  await casScreen.waitFor({ state: 'detached', timeout: 5000 });
  await assertFramesIncrease(ivy, 2);

  // Obi's signaling connection drops: Obi sees the reconnecting banner, the others see Obi
  // reconnecting, and the session resumes on its own with media flowing throughout.
  assert.equal(obiSockets.length, 1);
  await obiSockets[0].close({ code: 4000, reason: 'network drop' });
  await obi.getByRole('status').filter({ hasText: 'Reconnecting' }).waitFor({ timeout: 5000 });
  await ivy.locator('figure', { hasText: 'Obi Interviewer' }).getByText('reconnecting').waitFor({ timeout: 5000 });
  await obi.getByRole('status').filter({ hasText: 'Reconnecting' }).waitFor({ state: 'detached', timeout: 15_000 });
  await ivy.locator('figure', { hasText: 'Obi Interviewer' }).getByText('reconnecting').waitFor({ state: 'detached', timeout: 5000 });
  assert.equal(obiSockets.length, 2, 'one new signaling connection, a resume');
  // After the resume Obi restarted ICE on both connections (new credentials), and media
  // keeps flowing both ways over the restarted connections.
  const ufrag = (sdp) => /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];
  const deadline = Date.now() + 10_000;
  while (!obiSent.some((m) => m.type === 'restart_ice') && Date.now() < deadline) await obi.waitForTimeout(100);
  assert.ok(obiSent.some((m) => m.type === 'restart_ice'), 'the subscriber connection was restarted');
  const offers = obiSent.filter((m) => m.type === 'publish_offer').map((m) => ufrag(m.sdp));
  assert.ok(offers.length >= 2 && offers.at(-1) !== offers[0], `the publisher re-offered with new ICE credentials: ${offers}`);
  assert.equal(obiSent.filter((m) => m.type === 'join').at(-1).resume_token !== undefined, true);
  assert.ok(obiSent.some((m) => m.type === 'ice_candidate'), 'candidates trickle to the server');
  await obi.waitForTimeout(2000);
  await assertFramesIncrease(obi, 2);
  await assertFramesIncrease(ivy, 2);
  // The resumed session still signals: chat from Obi reaches Ivy.
  await obi.getByLabel('Message').fill('Back again');
  await obi.getByRole('button', { name: 'Send' }).click();
  await ivy.getByText('Back again').waitFor();

  // A reload rejoins: after joining again, the others see the candidate's video resume.
  await cas.reload();
  const rejoin = cas.getByRole('button', { name: 'Join room' });
  await rejoin.waitFor();
  await cas.waitForFunction(() => !document.querySelector('button[disabled]'));
  await rejoin.click();
  await cas.getByRole('heading', { name: 'Interview room' }).waitFor();
  for (const page of [ivy, cas]) {
    await assertFramesIncrease(page, 2);
  }

  await cas.getByLabel('Message').fill('Hello, can you hear me?');
  await cas.getByRole('button', { name: 'Send' }).click();
  await ivy.getByText('Hello, can you hear me?').waitFor();
  await obi.getByText('Hello, can you hear me?').waitFor();

  // An interviewer mutes the candidate: the candidate's own controls show it, the others see it,
  // and the candidate can turn the microphone back on.
  await ivy.getByRole('button', { name: 'Mute Casey Candidate' }).click();
  await cas.getByRole('button', { name: 'Unmute microphone' }).waitFor({ timeout: 5000 });
  const casTile = obi.locator('figure', { hasText: 'Casey Candidate' });
  await casTile.getByText('muted', { exact: true }).waitFor({ timeout: 5000 });
  await cas.getByRole('button', { name: 'Unmute microphone' }).click();
  await casTile.getByText('muted', { exact: true }).waitFor({ state: 'detached', timeout: 5000 });
  // Candidates have no moderation controls.
  assert.equal(await cas.getByRole('button', { name: /^Mute Ivy/ }).count(), 0);

  // Turning a camera off is shown to the others.
  await cas.getByRole('button', { name: 'Turn camera off' }).click();
  await ivy.locator('figure', { hasText: 'Casey Candidate' }).getByText('Camera off').waitFor({ timeout: 5000 });
  await cas.getByRole('button', { name: 'Turn camera on' }).click();
  await ivy.locator(`video[aria-label="Casey Candidate's camera"]`).waitFor({ timeout: 5000 });

  await cas.getByRole('button', { name: 'Leave' }).click();
  const leftAt = Date.now();
  await ivy.waitForFunction(
    () =>
      [...document.querySelectorAll('video')].filter((v) =>
        (v.getAttribute('aria-label') ?? '').endsWith("'s camera"),
      ).length === 1,
    null,
    { timeout: 5000 },
  );
  assert.ok(Date.now() - leftAt <= 5000);
});

test("browsers decode the Rust test client's real media through the SFU", async () => {
  const created = await server.schedule('ivy@example.com', 'Interop test', [
        { email: 'cas2@example.com', display_name: 'Casey Candidate', role: 'candidate' },
        { email: 'bot@example.com', role: 'interviewer' },
      ]);
  // The fake participant publishes GStreamer-encoded Opus and three-layer simulcast VP8,
  // packetized by str0m, exactly as the integration tests and load tool do.
  const bot = spawn(
    FAKE_PARTICIPANT,
    ['--base', server.base, '--email', 'bot@example.com', '--interview', created.interview.id, '--seconds', '60'],
    { env: { ...process.env, SIGHTLINE_FAKE_PASSWORD: PASSWORD }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  try {
    const ivy = await (await browser.newContext()).newPage();
    await server.signIn(ivy, 'ivy@example.com');
    await server.enterRoom(ivy, created.interview.id);
    await assertFramesIncrease(ivy, 1);
    const video = ivy.locator(`video[aria-label="Rusty Bot's camera"]`);
    const size = await video.evaluate((v) => [v.videoWidth, v.videoHeight]);
    assert.ok(size[0] >= 160 && size[1] >= 120, `decoded video has a real size: ${size}`);
    await ivy.locator(`audio[aria-label="Rusty Bot's microphone"]`).waitFor({ state: 'attached' });
    // The tone is speech to the SFU's level detector: the bot's tile lights up.
    await ivy.locator('figure.tile.speaking', { hasText: 'Rusty Bot' }).waitFor({ timeout: 15_000 });
    await ivy.screenshot({ path: join(artifacts, 'room-interop.png'), fullPage: true });
  } finally {
    bot.kill('SIGTERM');
  }
});
