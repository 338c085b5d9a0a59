// Recording in real browsers: an interviewer starts recording, the candidate consents and the
// other interviewer acknowledges before anything of theirs is recorded, everyone sees the
// indicator; the second interviewer joins once the first two have 10 s recorded. After 10 s of
// the late joiner the recording stops and is listed with every track: each file is valid WebM
// with the right codec and a duration within 1 s of what the manifest says (checked with
// gst-discoverer-1.0), the cameras that sent their full layer are 1280×720, the manifest's join is when the test saw the late joiner join, their
// tracks start once they agreed (within a keyframe interval), and the reviewer player plays
// everything in step after a seek. The interview page lists it as complete; a candidate who opens
// its address is told it is not theirs to see, in the same words as for one that does not exist.
// A server killed with SIGKILL mid-recording finishes the
// recording as interrupted when it starts again, with every segment it had closed, and it plays.
//
// What has been recorded is read from the recorder's own record (the manifest it keeps in its
// spool), never guessed from the time that passed.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  artifacts,
  axeViolations,
  launchBrowser,
  limitedSeconds,
  startServer,
  steps,
  waitFor,
  waitForFullLayer,
} from './harness.mjs';

/** The recorder's segment length (`SEGMENT` in recorder/src/writer.rs). */
const SEGMENT_MS = 10_000;
/**
 * How long a video take may wait for a keyframe: the recorder asks for one every half segment
 * (writer.rs), and a new take's tap asks at once and until one comes. A take starts within this
 * of the moment its participant may be recorded.
 */
const KEYFRAME_INTERVAL_MS = SEGMENT_MS / 2;
/**
 * The manifest's wall clock (`started_at_ms`) and its session clock are read a file write apart
 * (recorder/src/session.rs), in whole milliseconds; the test shares the machine's clock.
 */
const CLOCK_SLACK_MS = 100;

let server;
let browser;

before(async () => {
  server = await startServer();
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  server.createUser('obi@example.com', 'Obi Interviewer', 'interviewer');
  browser = await launchBrowser();
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
}, { timeout: 60_000 });

/** Duration (seconds) and description of a media file, from gst-discoverer-1.0. */
function discover(path) {
  const text = execFileSync('gst-discoverer-1.0', [path], { encoding: 'utf8' });
  const match = /Duration: (\d+):(\d+):([\d.]+)/.exec(text);
  assert.ok(match, text);
  return { seconds: Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]), text };
}

/** The interview's recording once it has `status` (polled through the API). */
function recordingWith(status, interviewId, access, timeoutMs) {
  return waitFor(
    `a recording that is ${status}`,
    async () => {
      const list = await server.api('GET', `/api/interviews/${interviewId}/recordings`, undefined, access);
      return list.find((r) => r.status === status);
    },
    timeoutMs,
    500,
  );
}

/** Milliseconds of its own media a take has recorded, by its anchors (one every 5 s of media). */
const recordedMs = (take) => take.anchors.at(-1)?.media_ms ?? -1;

/** What a spool manifest says of its takes, for failure messages and the step log. */
function takes(manifest) {
  return JSON.stringify(
    manifest?.tracks.map((t) => ({
      id: t.id,
      kind: t.kind,
      start_ms: t.start_ms,
      recorded_ms: recordedMs(t),
      segments: t.segments.map((s) => [s.index, s.start_ms, s.end_ms]),
    })),
  );
}

/** The player's active elements: which take, where on the session clock, playing or not. */
function playerPositions(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('video, audio')]
      .filter((m) => m.dataset.active === 'true')
      .map((m) => ({ take: m.dataset.take, session: Number(m.dataset.startMs) + m.currentTime * 1000, paused: m.paused })),
  );
}

const spread = (positions) => Math.max(...positions.map((p) => p.session)) - Math.min(...positions.map((p) => p.session));

/** Video frames the page's player elements dropped: its browser cannot decode them in time. */
const droppedFrames = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('video')].reduce((sum, v) => sum + v.getVideoPlaybackQuality().droppedVideoFrames, 0),
  );

/**
 * How far apart the tracks may be: 100 ms, the player's promise, while the browser keeps up. A
 * browser that drops frames (too little CPU to decode every 720p camera, as on a 2-core machine
 * under load) plays its videos late: then only a second.
 */
const stepLimit = (dropping) => (dropping ? 1_000 : 100);

test('an interview is recorded with consent and played back in sync', { timeout: 300_000 }, async (t) => {
  const step = steps(t);
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
  // The recorder takes the full layer: once both send it, the recording is 1280×720 from the start.
  step('both cameras send their full 1280×720 layer');
  await waitForFullLayer(ivy, 'Ivy');
  await waitForFullLayer(cas, 'Casey');

  // Starting waits for the candidate, who is told what is recorded, who sees it, how long.
  step('Ivy starts recording; Casey consents');
  await ivy.getByRole('button', { name: 'Start recording' }).click();
  await ivy.getByRole('status').filter({ hasText: 'Recording starts once everyone agrees' }).waitFor();
  const consent = cas.getByRole('alertdialog', { name: 'This interview will be recorded' });
  await consent.waitFor();
  await consent.getByText('kept for 90 days').waitFor();
  await cas.screenshot({ path: join(artifacts, 'recording-consent.png') });
  await consent.getByRole('button', { name: 'I agree to be recorded' }).click();
  for (const page of [ivy, cas]) {
    await page.getByRole('status').filter({ hasText: 'Recording' }).first().waitFor();
    await page.locator('.badge.recording').waitFor({ timeout: 15_000 });
  }
  const { id: recordingId } = await recordingWith('recording', interviewId, created.access, 30_000);
  // Casey writes a line of code now and another while Obi is recorded: the player's code
  // replay must show each only from its moment on.
  const casEditor = cas.getByRole('textbox', { name: 'Shared code editor' });
  const ivySees = (text) => ivy.locator('.workspace .cm-content', { hasText: text }).waitFor();
  await casEditor.click();
  await cas.keyboard.type('first = 1');
  await ivySees('first = 1');
  const firstLineAt = Date.now();

  // The second interviewer joins once Ivy and Casey have 10 s recorded, and acknowledges.
  step('Ivy and Casey are recorded for 10 s');
  const early = await waitFor('10 s recorded in each of Ivy\'s and Casey\'s takes', () => {
    const manifest = server.spoolManifest(recordingId);
    const ready = manifest?.tracks.length === 4 && manifest.tracks.every((take) => recordedMs(take) >= 10_000);
    assert.ok(ready, `takes: ${takes(manifest)}`);
    return new Set(manifest.tracks.map((take) => take.id));
  }, 60_000);
  step('Obi joins and acknowledges');
  const joining = Date.now();
  await server.enterRoom(obi, interviewId);
  const acknowledge = obi.getByRole('alertdialog', { name: 'Recording acknowledgement' });
  await acknowledge.waitFor({ timeout: 15_000 });
  // Asked once the recorder has seen Obi join (the join is on its timeline by now); nothing of
  // Obi's may be recorded before this click.
  const agreeing = Date.now();
  await acknowledge.getByRole('button', { name: 'Acknowledge' }).click();
  // Gone once the server has the acknowledgement and hands Obi's tracks to the recorder.
  await acknowledge.waitFor({ state: 'detached', timeout: 15_000 });
  const agreed = Date.now();
  await obi.locator('.badge.recording').waitFor({ timeout: 15_000 });
  const secondLineFrom = Date.now();
  await casEditor.click();
  await cas.keyboard.press('Control+End');
  await cas.keyboard.type('\nsecond = 2');
  await ivySees('second = 2');
  const secondLineAt = Date.now();
  step('Obi is recorded for 10 s');
  await waitFor('10 s recorded in each of Obi\'s takes', () => {
    const manifest = server.spoolManifest(recordingId);
    const late = manifest?.tracks.filter((take) => !early.has(take.id)) ?? [];
    assert.ok(late.length === 2 && late.every((take) => recordedMs(take) >= 10_000), `takes: ${takes(manifest)}`);
    return true;
  }, 60_000);
  step('Ivy stops the recording');
  await ivy.getByRole('button', { name: 'Stop recording' }).click();
  await ivy.locator('.badge.recording').waitFor({ state: 'detached', timeout: 15_000 });

  // Listed with every track once finished.
  const recording = await recordingWith('complete', interviewId, created.access, 120_000);
  const view = await server.api('GET', `/api/recordings/${recording.id}`, undefined, created.access);
  const tracks = view.manifest.tracks;
  const people = new Set(tracks.map((t) => t.participant));
  assert.equal(people.size, 3, 'three participants recorded');
  assert.equal(tracks.length, 6, 'a camera and a microphone each');
  // How long each early publisher's encoder was held back by its CPU or bandwidth estimate.
  const nameOf = (identity) => view.manifest.participants.find((p) => p.identity === identity)?.name;
  const limited = {
    'Ivy Interviewer': await limitedSeconds(ivy),
    'Casey Candidate': await limitedSeconds(cas),
    'Obi Interviewer': await limitedSeconds(obi),
  };
  const wasLimited = (identity) => {
    const seconds = limited[nameOf(identity)];
    return seconds !== undefined && seconds.cpu + seconds.bandwidth > 0;
  };
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
      // Ivy's and Casey's cameras were sending their full layer before the recording began, so
      // their files are 1280×720, unless Chromium says its encoder was held back by its CPU or
      // bandwidth estimate (then it drops the full layer, and the recorder takes the best layer
      // still arriving).
      if (track.kind === 'video' && early.has(track.id) && !/Width: 1280\s+Height: 720/.test(text)) {
        const who = nameOf(track.participant);
        const { cpu, bandwidth } = limited[who] ?? { cpu: 0, bandwidth: 0 };
        assert.ok(cpu + bandwidth > 0, `${track.id} (${who}) is not 1280×720 and its encoder was never limited:\n${text}`);
        t.diagnostic(`${who}'s camera recorded below 1280×720 (limited: CPU ${cpu.toFixed(1)} s, bandwidth ${bandwidth.toFixed(1)} s)`);
      }
      const expected = (track.end_ms - track.start_ms) / 1000;
      // Within 1 s of the manifest; a camera whose encoder Chromium held back (a busy machine)
      // may pause before the stop, and gets 2 s (reported).
      const slack = track.kind === 'video' && wasLimited(track.participant) ? 2 : 1;
      assert.ok(Math.abs(seconds - expected) <= slack, `${track.id} (${track.kind}): ${seconds} s, manifest ${expected} s`);
      if (Math.abs(seconds - expected) > 1) t.diagnostic(`${track.id}: ${seconds} s, manifest ${expected} s (encoder limited)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // The late joiner on the manifest's clock, against what the test saw (the test and the server
  // share the machine's wall clock; the manifest's is `started_at_ms` + session time): Obi enters
  // the recording (named, a join on the timeline) when he acknowledges, not when he came in, and
  // each take starts after that, within a keyframe interval of the server taking the
  // acknowledgement: nothing of Obi's before it, and little after it missed.
  const obiIdentity = view.manifest.participants.find((p) => p.name === 'Obi Interviewer')?.identity;
  const session = (wallMs) => wallMs - view.manifest.started_at_ms;
  const joined = view.manifest.events.find((e) => e.kind === 'joined' && e.participant === obiIdentity);
  assert.ok(joined, `the late join is on the timeline: ${JSON.stringify(view.manifest.events)}`);
  assert.ok(
    joined.at_ms >= session(agreeing) - CLOCK_SLACK_MS && joined.at_ms <= session(agreed) + CLOCK_SLACK_MS,
    `Obi joined the recording at ${joined.at_ms} ms by the manifest, between ${session(agreeing)} and ${session(agreed)} ms as seen (he came in at ${session(joining)} ms)`,
  );
  const late = tracks.filter((t) => t.participant === obiIdentity);
  assert.equal(late.length, 2, 'the late joiner is recorded');
  for (const track of late) {
    assert.ok(
      track.start_ms >= session(agreeing) - CLOCK_SLACK_MS && track.start_ms <= session(agreed) + KEYFRAME_INTERVAL_MS,
      `${track.id} (${track.kind}) starts at ${track.start_ms} ms; Obi joined at ${joined.at_ms} ms, ` +
        `acknowledged at ${session(agreeing)} ms, taken by ${session(agreed)} ms`,
    );
  }

  // The interview page lists it as complete; a candidate who opens its address is told in words
  // that it is not theirs to see, exactly as for an address that does not exist.
  step('the recording is listed; a candidate may not open it');
  await ivy.goto(`${server.base}/interviews/${interviewId}`);
  await ivy.locator(`[data-recording="${recording.id}"]`).getByRole('status').filter({ hasText: 'Complete' }).waitFor();
  const refused = "This recording isn't available to you";
  await cas.goto(`${server.base}/recordings/${recording.id}`);
  await cas.getByRole('heading', { name: refused }).waitFor();
  assert.equal(await cas.locator('video').count(), 0);
  await ivy.goto(`${server.base}/recordings/no-such-recording`);
  await ivy.getByRole('heading', { name: refused }).waitFor();

  // The reviewer player: every track plays, and after a seek to a point every take covers their
  // positions agree, and still do a second of playback later.
  step('the reviewer player plays every track in step');
  const seekMs = Math.ceil((Math.max(...tracks.map((t) => t.start_ms)) + 1_000) / 1_000) * 1_000;
  assert.ok(
    seekMs + 3_000 <= Math.min(...tracks.map((t) => t.end_ms)),
    `every take covers ${seekMs} ms and 3 s more: ${takes(view.manifest)}`,
  );
  await ivy.goto(`${server.base}/recordings/${recording.id}`);
  await ivy.getByRole('heading', { name: 'Recording: Recorded interview' }).waitFor();
  await ivy.waitForFunction(
    () => [...document.querySelectorAll('video, audio')].length === 6 &&
      [...document.querySelectorAll('video, audio')].every((m) => m.readyState >= 1),
    null,
    { timeout: 30_000 },
  );
  // The player has no serious accessibility violation (axe, as on every other page).
  const inPlayer = await axeViolations(ivy);
  assert.deepEqual(inPlayer, [], `the player:\n${inPlayer.join('\n')}`);
  // Seek and play; a busy machine may not have every element playing in step before the
  // recording's end, so the seek is made again (from a paused player) while it has not.
  let seeked = 0;
  const seekAndPlay = async () => {
    const play = ivy.getByRole('button', { name: 'Play' });
    if (await play.isVisible()) await play.click();
    await ivy.getByRole('button', { name: 'Pause' }).waitFor();
    await ivy.getByLabel('Position').fill(String(seekMs));
    seeked = Date.now();
  };
  await seekAndPlay();
  const droppedBefore = await droppedFrames(ivy);
  const dropping = async () => (await droppedFrames(ivy)) > droppedBefore;
  const settled = await waitFor(`every track playing in step from ${seekMs} ms`, async () => {
    if (Date.now() - seeked > 8_000) await seekAndPlay();
    const positions = await playerPositions(ivy);
    const playing = positions.length === 6 && positions.every((p) => !p.paused && p.session >= seekMs);
    // On failure, say where the player's clock and every element stand.
    const player = () =>
      ivy.evaluate(() => ({
        position: document.querySelector('#player-position')?.value,
        end: document.querySelector('#player-position')?.max,
        elements: [...document.querySelectorAll('video, audio')].map((m) => ({
          take: m.dataset.take,
          active: m.dataset.active,
          time: m.currentTime,
          paused: m.paused,
          ready: m.readyState,
        })),
      }));
    if (!(playing && spread(positions) <= stepLimit(await dropping()))) {
      assert.fail(`tracks: ${JSON.stringify(positions)}; player: ${JSON.stringify(await player())}`);
    }
    return positions;
  }, 60_000);
  const resumeFrom = Math.max(...settled.map((p) => p.session));
  // A second later every track still plays, in step: on a busy machine one sample can catch an
  // element a frame or two behind, which the player's drift correction pulls back, so the
  // condition is waited for (bounded), not sampled once.
  const positions = await waitFor('a second more of playback, every track in step', async () => {
    const now = await playerPositions(ivy);
    const later = now.length === 6 && Math.min(...now.map((p) => p.session)) >= resumeFrom + 1_000;
    if (!later) return false;
    assert.ok(now.every((p) => !p.paused), `all playing: ${JSON.stringify(now)}`);
    const slow = await dropping();
    assert.ok(spread(now) <= stepLimit(slow), `in step within ${stepLimit(slow)} ms: ${JSON.stringify(now)}`);
    return now;
  }, 15_000);
  const slow = await dropping();
  if (slow) t.diagnostic(`the player's browser dropped frames; the tracks were ${Math.round(spread(positions))} ms apart`);
  await waitFor('every camera to decode', async () => {
    const frames = await ivy.evaluate(() =>
      [...document.querySelectorAll('video')].map((v) => v.getVideoPlaybackQuality().totalVideoFrames),
    );
    assert.ok(frames.every((n) => n > 0), `frames: ${frames}`);
    return true;
  });
  await ivy.screenshot({ path: join(artifacts, 'recording-player.png'), fullPage: true });

  // The code replay follows the player's clock: scrubbed to between the two lines it shows the
  // first alone, scrubbed past the second it shows both.
  step('the reviewer scrubs the player and sees the code as it was then');
  await ivy.getByRole('button', { name: 'Pause' }).click();
  await ivy.getByRole('button', { name: 'Show the code, in step' }).click();
  const started = view.manifest.started_at_ms;
  const between = firstLineAt - started + 1_000;
  assert.ok(between < secondLineFrom - started, `a moment between the lines: ${between} ms`);
  const replayed = (want) =>
    ivy.waitForFunction((text) => {
      const lines = [...document.querySelectorAll('.replay .cm-content .cm-line')].map((l) => l.textContent);
      return lines.join('\n') === text;
    }, want, { timeout: 15_000 });
  await ivy.getByLabel('Position').fill(String(between));
  await replayed('first = 1');
  const after = Math.min(secondLineAt - started + 1_000, Number(await ivy.getByLabel('Position').getAttribute('max')));
  await ivy.getByLabel('Position').fill(String(after));
  await replayed('first = 1\nsecond = 2');
  await ivy.getByLabel('Position').fill('0');
  await replayed('');
  await ivy.screenshot({ path: join(artifacts, 'recording-code-replay.png'), fullPage: true });
  for (const page of [ivy, obi, cas]) await page.context().close();
});

test('a recording cut short by kill -9 is interrupted, kept and playable after a restart', { timeout: 300_000 }, async (t) => {
  const step = steps(t);
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
  step('recording starts');
  await ivy.getByRole('button', { name: 'Start recording' }).click();
  await cas.getByRole('button', { name: 'I agree to be recorded' }).click({ timeout: 60_000 });
  await ivy.locator('.badge.recording').waitFor({ timeout: 15_000 });
  const { id: recordingId } = await recordingWith('recording', interviewId, created.access, 30_000);
  // Every take closes a segment (a video one once the keyframe interval after it is complete).
  step('every take closes a segment');
  await waitFor('a closed segment in each of the four takes', () => {
    const manifest = server.spoolManifest(recordingId);
    const ready = manifest?.tracks.length === 4 && manifest.tracks.every((take) => take.segments.length > 0);
    assert.ok(ready, `takes: ${takes(manifest)}`);
    return true;
  }, 90_000);

  // The crash comes right after the recorder's own record of what it had closed is read.
  const closed = server.spoolManifest(recordingId);
  step(`the server is killed; it had closed ${takes(closed)}`);
  await server.kill();
  await ivyContext.close();
  await casContext.close();
  server = await startServer({ dataDir: server.dataDir });

  step('the restarted server finishes the recording');
  const recording = await recordingWith('interrupted', interviewId, created.access, 120_000);
  const view = await server.api('GET', `/api/recordings/${recording.id}`, undefined, created.access);
  assert.equal(view.manifest.status, 'interrupted');
  assert.equal(view.manifest.tracks.length, 4);
  const dir = mkdtempSync(join(tmpdir(), 'sightline-crash-'));
  try {
    for (const track of view.manifest.tracks) {
      // Only the segment being written may be lost: every one closed before the crash is kept,
      // and the joined file holds them (within the 1 s the complete recording allows).
      const before = closed.tracks.find((take) => take.id === track.id)?.segments ?? [];
      const kept = track.segments.map((s) => s.index);
      assert.ok(before.length > 0, `${track.id} had closed segments before the crash`);
      assert.ok(
        before.every((s) => kept.includes(s.index)),
        `${track.id} (${track.kind}) keeps the segments closed before the crash, ${before.map((s) => s.index)}: ${kept}`,
      );
      const closedMs = before.reduce((sum, s) => sum + (s.end_ms - s.start_ms), 0);
      assert.ok(view.media[track.id], `${track.id} was joined into a file`);
      const response = await fetch(`${server.base}${view.media[track.id]}`);
      const path = join(dir, `${track.id}.webm`);
      writeFileSync(path, Buffer.from(await response.arrayBuffer()));
      const { seconds, text } = discover(path);
      assert.match(text, /Seekable: yes/);
      const kept_ms = seconds * 1000;
      const summary = `${track.id} (${track.kind}) kept ${seconds} s; the segments closed before the crash span ${closedMs / 1000} s`;
      if (track.kind === 'audio') {
        assert.ok(kept_ms >= closedMs - 1000, summary);
      } else {
        // A video segment's span runs to the next keyframe, and a sender starved of CPU may pause
        // before it: the file must reach into the last segment closed, which starts at a keyframe.
        const lastStart = Math.max(...before.map((s) => s.start_ms));
        assert.ok(kept_ms > lastStart, `${summary}; the last one starts at ${lastStart / 1000} s`);
        t.diagnostic(summary);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  step('the interrupted recording plays');
  const reviewer = await (await browser.newContext()).newPage();
  await server.signIn(reviewer, 'ivy@example.com');
  await reviewer.goto(`${server.base}/recordings/${recording.id}`);
  await reviewer.getByText('The server stopped during this recording').waitFor();
  await reviewer.getByRole('button', { name: 'Play' }).click();
  await reviewer.waitForFunction(
    () => [...document.querySelectorAll('video')].every((v) => v.getVideoPlaybackQuality().totalVideoFrames > 0),
    null,
    { timeout: 30_000 },
  );
});
