// Proctoring in real browsers: the candidate's Chromium shows a clip made from the test
// photograph as its camera (`--use-file-for-fake-video-capture`), the server decodes what the
// SFU received and checks it. The interviewer's panel shows "No face visible" when the person
// in the clip leaves, "More than one face" when a second person appears, and nothing for one
// face in good light; the candidate agrees first, sees that the room is proctored and never sees
// an event. A reviewer finds the event on the recording's timeline and confirms it.
//
// The check durations are shortened (calibration and "no face" 4 s instead of 20 s and 10 s) so
// each clip's change is seen within seconds; the defaults are covered by the Rust tests.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { artifacts, launchBrowser, startServer, steps, waitFor } from './harness.mjs';

const PHOTO = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'testkit', 'data', 'one_face.png');
const WIDTH = 320;
const HEIGHT = 240;
const FPS = 10;
/** Seconds of one face at the start of each clip (the face checks calibrate on it). */
const FACE_FIRST_S = 8;
/** Seconds of each clip after that. */
const THEN_S = 12;

let server;
let clips;

before(async () => {
  server = await startServer({
    env: {
      SIGHTLINE__PROCTORING__CHECKS__CALIBRATION_SECS: '4',
      SIGHTLINE__PROCTORING__CHECKS__FACE_ABSENT_SECS: '4',
    },
  });
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  server.createUser('rex@example.com', 'Rex Reviewer', 'reviewer');
  clips = mkdtempSync(join(tmpdir(), 'sightline-clips-'));
}, { timeout: 60_000 });

after(async () => {
  await server?.stop();
  if (clips) rmSync(clips, { recursive: true, force: true });
}, { timeout: 60_000 });

/** A crop of the 512×512 photograph scaled to `w`×`h`, as packed RGB rows. */
function crop([left, top, width, height], w, h) {
  const out = join(clips, `crop-${left}-${top}-${w}x${h}.rgb`);
  execFileSync('gst-launch-1.0', ['-q', 'filesrc', `location=${PHOTO}`, '!', 'pngdec', '!', 'videoconvert', '!',
    'videocrop', `left=${left}`, `top=${top}`, `right=${512 - left - width}`, `bottom=${512 - top - height}`, '!',
    'videoscale', '!', `video/x-raw,format=RGB,width=${w},height=${h}`, '!', 'filesink', `location=${out}`]);
  const padded = readFileSync(out);
  const stride = Math.ceil((w * 3) / 4) * 4;
  const rows = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) padded.copy(rows, y * w * 3, y * stride, y * stride + w * 3);
  return { rgb: rows, w, h };
}

/** The pictures, as pieces of the photograph placed on a grey backdrop. */
function scenes() {
  const head = [120, 0, 192, 256];
  const one = crop(head, 180, 240);
  const small = crop(head, 152, 200);
  return {
    one: [{ ...one, x: 70, y: 0 }],
    two: [{ ...small, x: 6, y: 20 }, { ...small, x: 162, y: 20 }],
    none: [{ ...crop([0, 300, 512, 212], WIDTH, HEIGHT), x: 0, y: 0 }],
  };
}

/** One I420 frame of `parts`, moved `sway` pixels sideways (a person is never quite still). */
function frame(parts, sway) {
  const rgb = Buffer.alloc(WIDTH * HEIGHT * 3, 96);
  for (const part of parts) {
    for (let row = 0; row < part.h; row++) {
      for (let col = 0; col < part.w; col++) {
        const x = part.x + col + sway;
        const y = part.y + row;
        if (x < 0 || x >= WIDTH || y < 0 || y >= HEIGHT) continue;
        part.rgb.copy(rgb, (y * WIDTH + x) * 3, (row * part.w + col) * 3, (row * part.w + col) * 3 + 3);
      }
    }
  }
  const yPlane = Buffer.alloc(WIDTH * HEIGHT);
  const uPlane = Buffer.alloc((WIDTH / 2) * (HEIGHT / 2));
  const vPlane = Buffer.alloc((WIDTH / 2) * (HEIGHT / 2));
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const i = (y * WIDTH + x) * 3;
      const [r, g, b] = [rgb[i], rgb[i + 1], rgb[i + 2]];
      yPlane[y * WIDTH + x] = Math.round(16 + 0.257 * r + 0.504 * g + 0.098 * b);
      if (y % 2 === 0 && x % 2 === 0) {
        const c = (y / 2) * (WIDTH / 2) + x / 2;
        uPlane[c] = Math.round(128 - 0.148 * r - 0.291 * g + 0.439 * b);
        vPlane[c] = Math.round(128 + 0.439 * r - 0.368 * g - 0.071 * b);
      }
    }
  }
  return Buffer.concat([Buffer.from('FRAME\n'), yPlane, uPlane, vPlane]);
}

/** A Y4M clip: one face for FACE_FIRST_S, then `then` for THEN_S (Chromium loops it). */
function clip(name, then) {
  const all = scenes();
  const path = join(clips, `${name}.y4m`);
  const frames = [Buffer.from(`YUV4MPEG2 W${WIDTH} H${HEIGHT} F${FPS}:1 Ip A1:1 C420jpeg\n`)];
  for (let n = 0; n < (FACE_FIRST_S + THEN_S) * FPS; n++) {
    const parts = n < FACE_FIRST_S * FPS ? all.one : all[then];
    frames.push(frame(parts, Math.round(3 * Math.sin((2 * Math.PI * n) / 15))));
  }
  writeFileSync(path, Buffer.concat(frames));
  return path;
}

/**
 * Schedules a proctored (and automatically recorded) interview with Casey, opens Ivy's room in
 * the default browser and Casey's in a browser whose camera shows `clipPath`; Casey agrees.
 * Returns the pages and the browsers to close.
 */
async function proctoredRoom(t, title, clipPath) {
  const step = steps(t);
  const created = await server.schedule('ivy@example.com', title, [
    { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
    { email: 'rex@example.com', role: 'reviewer' },
  ]);
  const interviewId = created.interview.id;
  await server.api('PUT', `/api/interviews/${interviewId}/recording`, { auto: true }, created.access);
  const staff = await launchBrowser();
  const candidate = await launchBrowser({ fakeVideo: clipPath });
  const ivy = await (await staff.newContext()).newPage();
  const cas = await (await candidate.newContext()).newPage();
  step('Ivy turns proctoring on from the interview page');
  await server.signIn(ivy, 'ivy@example.com');
  await ivy.goto(`${server.base}/interviews/${interviewId}`);
  const box = ivy.getByLabel(/Proctored: the server checks/);
  await box.check();
  await ivy.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
  step('Ivy and Casey enter; Casey reads what is checked and agrees');
  await cas.goto(created.invites[0].url);
  await cas.getByRole('button', { name: 'Continue to the interview' }).click();
  await cas.getByRole('heading', { name: title }).waitFor();
  await server.enterRoom(ivy, interviewId);
  await server.enterRoom(cas, interviewId);
  const consent = cas.getByRole('alertdialog', { name: 'This interview is recorded and proctored' });
  await consent.waitFor({ timeout: 30_000 });
  await consent.getByText('no face recognition').waitFor();
  await cas.screenshot({ path: join(artifacts, 'proctoring-consent.png') });
  await consent.getByRole('button', { name: 'I agree to recording and proctoring' }).click();
  await consent.waitFor({ state: 'detached', timeout: 15_000 });
  await ivy.getByRole('alertdialog', { name: 'Recording acknowledgement' }).getByRole('button', { name: 'Acknowledge' })
    .click({ timeout: 30_000 });
  await cas.locator('.badge.proctored').waitFor();
  await ivy.getByRole('heading', { name: 'Proctoring' }).waitFor();
  return { interviewId, created, ivy, cas, close: async () => { await staff.close(); await candidate.close(); } };
}

/** Waits for an event of `kind` in Ivy's panel. */
async function panelShows(ivy, kind, timeoutMs = 60_000) {
  await ivy.locator(`.proctoring-panel [data-kind="${kind}"]`).first().waitFor({ timeout: timeoutMs });
}

test('no face after the person leaves shows in the interviewer panel, never to the candidate', { timeout: 240_000 }, async (t) => {
  const room = await proctoredRoom(t, 'Proctored: leaves', clip('leaves', 'none'));
  try {
    await panelShows(room.ivy, 'face_absent');
    await room.ivy.screenshot({ path: join(artifacts, 'proctoring-panel.png') });
    assert.equal(await room.cas.locator('.proctoring-panel, .proctoring-event').count(), 0);
  } finally {
    await room.close();
  }
});

test('a second face shows in the panel and a reviewer confirms it on the recording', { timeout: 300_000 }, async (t) => {
  const step = steps(t);
  const room = await proctoredRoom(t, 'Proctored: second person', clip('second', 'two'));
  try {
    step('the second face is marked');
    await panelShows(room.ivy, 'multiple_faces');
    await room.ivy.getByRole('button', { name: 'Stop recording' }).click();
  } finally {
    await room.close();
  }
  step('the recording is complete');
  const recording = await waitFor('a complete recording', async () => {
    const list = await server.api('GET', `/api/interviews/${room.interviewId}/recordings`, undefined, room.created.access);
    return list.find((r) => r.status === 'complete');
  }, 120_000, 500);
  step('Rex finds the event on the timeline and confirms it');
  const browser = await launchBrowser();
  try {
    const rex = await (await browser.newContext()).newPage();
    await server.signIn(rex, 'rex@example.com');
    await rex.goto(`${server.base}/recordings/${recording.id}`);
    const marker = rex.locator('.timeline-marker.proctoring[data-kind="multiple_faces"]').first();
    await marker.waitFor({ timeout: 30_000 });
    await marker.click();
    const item = rex.locator('.proctoring-review li.proctoring-event[data-kind="multiple_faces"]').first();
    await item.getByLabel(/Note on/).fill('Someone sat down beside the candidate.');
    await item.getByRole('button', { name: 'Confirm More than one face' }).click();
    await item.getByText('Confirmed: Someone sat down beside the candidate.').waitFor();
    const row = rex.locator('.proctoring-summary tr[data-kind="multiple_faces"] td');
    assert.equal(await row.nth(3).innerText(), '1', 'one confirmed');
    await rex.screenshot({ path: join(artifacts, 'proctoring-review.png') });
  } finally {
    await browser.close();
  }
});

test('one face in good light marks nothing', { timeout: 240_000 }, async (t) => {
  const room = await proctoredRoom(t, 'Proctored: quiet', clip('quiet', 'one'));
  try {
    // Two loops of the clip, with every check past its duration.
    await room.ivy.waitForTimeout(40_000);
    await room.ivy.getByText('Nothing marked.').waitFor();
    const view = await server.api('GET', `/api/interviews/${room.interviewId}/proctoring`, undefined, room.created.access);
    assert.deepEqual(view.events, [], JSON.stringify(view.events));
    assert.equal(view.running, true);
  } finally {
    await room.close();
  }
});
