// Recording in real browsers: an interviewer starts recording, the candidate consents and the
// other interviewer acknowledges before anything of theirs is recorded, everyone sees the
// indicator; the second interviewer joins 10 s late. After about 20 s the recording stops and
// is listed with every track: each file is valid WebM with the right codec and a duration
// within 1 s of what the manifest says (checked with gst-discoverer-1.0), the late joiner's
// tracks start about 10 s in, and the reviewer player plays everything in step after a seek.
// A server killed with SIGKILL mid-recording finishes the recording as interrupted when it
// starts again, with everything but the segment it was writing, and it plays.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { artifacts, launchBrowser, startServer } from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  server.createUser('obi@example.com', 'Obi Interviewer', 'interviewer');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Duration (seconds) and description of a media file, from gst-discoverer-1.0. */
function discover(path) {
  const text = execFileSync('gst-discoverer-1.0', [path], { encoding: 'utf8' });
  const match = /Duration: (\d+):(\d+):([\d.]+)/.exec(text);
  assert.ok(match, text);
  return { seconds: Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]), text };
}

test('an interview is recorded with consent and played back in sync', async () => {
  const created = await server.schedule('ivy@example.com', 'Recorded interview', [
        { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
        { email: 'obi@example.com', role: 'interviewer' },
      ]);
  const interviewId = created.interview.id;
  const ivy = await (await browser.newContext()).newPage();
  const obi = await (await browser.newContext()).newPage();
  const cas = await (await browser.newContext()).newPage();
  await server.signIn(ivy, 'ivy@example.com');
  await server.signIn(obi, 'obi@example.com');
  await cas.goto(created.invites[0].url);
  await cas.getByRole('button', { name: 'Continue to the interview' }).click();
  await cas.getByRole('heading', { name: 'Recorded interview' }).waitFor();
  await server.enterRoom(ivy, interviewId);
  await server.enterRoom(cas, interviewId);

  // Starting waits for the candidate, who is told what is recorded, who sees it, how long.
  await ivy.getByRole('button', { name: 'Start recording' }).click();
  await ivy.getByRole('status').filter({ hasText: 'Recording starts once everyone agrees' }).waitFor();
  const consent = cas.getByRole('alertdialog', { name: 'This interview will be recorded' });
  await consent.waitFor();
  await consent.getByText('kept for 90 days').waitFor();
  await cas.screenshot({ path: join(artifacts, 'recording-consent.png') });
  await consent.getByRole('button', { name: 'I agree to be recorded' }).click();
  for (const page of [ivy, cas]) {
    await page.getByRole('status').filter({ hasText: 'Recording' }).first().waitFor();
    await page.locator('.badge.recording').waitFor({ timeout: 10_000 });
  }
  const recordingFrom = Date.now();

  // The second interviewer joins 10 s in and acknowledges.
  await ivy.waitForTimeout(10_000 - (Date.now() - recordingFrom));
  await server.enterRoom(obi, interviewId);
  const acknowledge = obi.getByRole('alertdialog', { name: 'Recording acknowledgement' });
  await acknowledge.getByRole('button', { name: 'Acknowledge' }).click();
  await obi.locator('.badge.recording').waitFor({ timeout: 10_000 });
  await ivy.waitForTimeout(Math.max(0, 20_000 - (Date.now() - recordingFrom)));
  await ivy.getByRole('button', { name: 'Stop recording' }).click();
  await ivy.locator('.badge.recording').waitFor({ state: 'detached', timeout: 10_000 });

  // Listed with every track once finished.
  let recording;
  for (let attempt = 0; attempt < 120; attempt += 1) {
    const list = await server.api('GET', `/api/interviews/${interviewId}/recordings`, undefined, created.access);
    if (list[0]?.status === 'complete') {
      recording = list[0];
      break;
    }
    await ivy.waitForTimeout(500);
  }
  assert.ok(recording, 'the recording completed');
  const view = await server.api('GET', `/api/recordings/${recording.id}`, undefined, created.access);
  const tracks = view.manifest.tracks;
  const people = new Set(tracks.map((t) => t.participant));
  assert.equal(people.size, 3, 'three participants recorded');
  assert.equal(tracks.length, 6, 'a camera and a microphone each');
  const dir = mkdtempSync(join(tmpdir(), 'sightline-recording-'));
  try {
    for (const track of tracks) {
      const response = await fetch(`${server.base}${view.media[track.id]}`);
      assert.equal(response.status, 200);
      const path = join(dir, `${track.id}.webm`);
      writeFileSync(path, Buffer.from(await response.arrayBuffer()));
      const { seconds, text } = discover(path);
      assert.match(text, /WebM/);
      assert.match(text, track.kind === 'video' ? /VP8/ : /Opus/);
      const expected = (track.end_ms - track.start_ms) / 1000;
      assert.ok(Math.abs(seconds - expected) <= 1, `${track.id} (${track.kind}): ${seconds} s, manifest ${expected} s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const late = tracks.filter((t) => t.participant === view.manifest.participants.find((p) => p.name === 'Obi Interviewer')?.identity);
  assert.equal(late.length, 2, 'the late joiner is recorded');
  for (const track of late) {
    assert.ok(track.start_ms >= 9_500 && track.start_ms <= 13_000, `the late joiner starts about 10 s in: ${track.start_ms} ms`);
  }

  // The reviewer player: every track plays, and after a seek their positions agree.
  await ivy.goto(`${server.base}/recordings/${recording.id}`);
  await ivy.getByRole('heading', { name: 'Recording' }).waitFor();
  await ivy.waitForFunction(
    () => [...document.querySelectorAll('video, audio')].length === 6 &&
      [...document.querySelectorAll('video, audio')].every((m) => m.readyState >= 1),
    null,
    { timeout: 20_000 },
  );
  await ivy.getByRole('button', { name: 'Play' }).click();
  await ivy.waitForTimeout(1500);
  await ivy.getByLabel('Position').fill('14000');
  await ivy.waitForTimeout(1500);
  const positions = await ivy.evaluate(() =>
    [...document.querySelectorAll('video, audio')]
      .filter((m) => m.dataset.active === 'true')
      .map((m) => ({ take: m.dataset.take, session: Number(m.dataset.startMs) + m.currentTime * 1000, paused: m.paused })),
  );
  assert.equal(positions.length, 6, `every track covers 14 s in: ${JSON.stringify(positions)}`);
  assert.ok(positions.every((p) => !p.paused), 'all playing');
  const times = positions.map((p) => p.session);
  assert.ok(Math.max(...times) - Math.min(...times) <= 100, `in step within 100 ms: ${JSON.stringify(positions)}`);
  assert.ok(Math.min(...times) >= 14_000, 'after the seek point');
  const frames = await ivy.evaluate(() =>
    [...document.querySelectorAll('video')].map((v) => v.getVideoPlaybackQuality().totalVideoFrames),
  );
  assert.ok(frames.every((n) => n > 0), `every camera decodes: ${frames}`);
  await ivy.screenshot({ path: join(artifacts, 'recording-player.png'), fullPage: true });
});

test('a recording cut short by kill -9 is interrupted, kept and playable after a restart', async () => {
  const created = await server.schedule('ivy@example.com', 'Crash interview', [{ email: 'cas2@example.com', display_name: 'Casey Candidate', role: 'candidate' }]);
  const interviewId = created.interview.id;
  const ivyContext = await browser.newContext();
  const casContext = await browser.newContext();
  const ivy = await ivyContext.newPage();
  const cas = await casContext.newPage();
  await server.signIn(ivy, 'ivy@example.com');
  await cas.goto(created.invites[0].url);
  await cas.getByRole('button', { name: 'Continue to the interview' }).click();
  await cas.getByRole('heading', { name: 'Crash interview' }).waitFor();
  await server.enterRoom(ivy, interviewId);
  await server.enterRoom(cas, interviewId);
  await ivy.getByRole('button', { name: 'Start recording' }).click();
  await cas.getByRole('button', { name: 'I agree to be recorded' }).click();
  await ivy.locator('.badge.recording').waitFor({ timeout: 10_000 });
  // Long enough for the first 10 s segments to close (after the keyframe interval that follows).
  await ivy.waitForTimeout(18_000);

  await server.kill();
  await ivyContext.close();
  await casContext.close();
  server = await startServer({ dataDir: server.dataDir });

  let recording;
  for (let attempt = 0; attempt < 120 && !recording; attempt += 1) {
    const list = await server.api('GET', `/api/interviews/${interviewId}/recordings`, undefined, created.access);
    if (list[0]?.status === 'interrupted') recording = list[0];
    else await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(recording, 'the restarted server finished the recording as interrupted');
  const view = await server.api('GET', `/api/recordings/${recording.id}`, undefined, created.access);
  assert.equal(view.manifest.status, 'interrupted');
  assert.equal(view.manifest.tracks.length, 4);
  const dir = mkdtempSync(join(tmpdir(), 'sightline-crash-'));
  try {
    for (const track of view.manifest.tracks) {
      assert.ok(view.media[track.id], `${track.id} was joined into a file`);
      const response = await fetch(`${server.base}${view.media[track.id]}`);
      const path = join(dir, `${track.id}.webm`);
      writeFileSync(path, Buffer.from(await response.arrayBuffer()));
      const { seconds, text } = discover(path);
      assert.match(text, /Seekable: yes/);
      // 18 s recorded; the segment being written (and at most half a segment after the last
      // closed one) is what a crash may lose.
      assert.ok(seconds >= 8, `${track.id} (${track.kind}) kept ${seconds} s of about 18 s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const reviewer = await (await browser.newContext()).newPage();
  await server.signIn(reviewer, 'ivy@example.com');
  await reviewer.goto(`${server.base}/recordings/${recording.id}`);
  await reviewer.getByText('The server stopped during this recording').waitFor();
  await reviewer.getByRole('button', { name: 'Play' }).click();
  await reviewer.waitForFunction(
    () => [...document.querySelectorAll('video')].every((v) => v.getVideoPlaybackQuality().totalVideoFrames > 0),
    null,
    { timeout: 15_000 },
  );
});
