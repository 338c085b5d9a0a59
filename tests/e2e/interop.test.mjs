// A WebRTC stack nobody at Sightline wrote, aiortc (Python), in a room beside Chromium: each
// decodes the other's camera through the SFU, with the codecs, SDP and ICE of its own stack.
// scripts/test installs aiortc into .tools/aiortc (tests/interop/requirements.txt).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PASSWORD, launchBrowser, startServer, steps, waitFor, waitForFramesIncreasing } from './harness.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PYTHON = process.env.SIGHTLINE_AIORTC_PYTHON ?? join(repo, '.tools', 'aiortc', 'bin', 'python');
const CLIENT = join(repo, 'tests', 'interop', 'aiortc_participant.py');

let server;
let browser;

before(async () => {
  server = await startServer();
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  server.createUser('aio@example.com', 'Aio Bot', 'interviewer');
  server.createUser('vee@example.com', 'Vee Eight', 'interviewer');
  browser = await launchBrowser();
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
}, { timeout: 60_000 });

/**
 * Starts an aiortc participant signed in as `email` (extra arguments: `--send-video H264`,
 * `--receive-video VP8`); `report()` is its latest line (what it decoded so far).
 */
function startAiortc(interviewId, email = 'aio@example.com', extra = []) {
  const child = spawn(
    PYTHON,
    [CLIENT, '--base', server.base, '--email', email, '--interview', interviewId, '--seconds', '150', ...extra],
    { env: { ...process.env, SIGHTLINE_FAKE_PASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let latest = null;
  let pending = '';
  let stderr = '';
  let exited = null;
  child.stdout.on('data', (chunk) => {
    pending += chunk;
    for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
      const line = pending.slice(0, end);
      pending = pending.slice(end + 1);
      try {
        latest = JSON.parse(line);
      } catch {
        stderr += `${line}\n`;
      }
    }
  });
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  child.on('exit', (code) => {
    exited = code;
  });
  return {
    report() {
      assert.equal(exited, null, `the aiortc participant exited (${exited}):\n${stderr}`);
      return latest;
    },
    stop() {
      child.kill('SIGTERM');
    },
  };
}

/** Waits until `page` decodes the aiortc participant's camera, while that participant runs. */
async function decodesAiortcCamera(page, aiortc) {
  const camera = `video[aria-label="Aio Bot's camera"]`;
  await waitFor("aiortc's camera on the page", async () => {
    aiortc.report();
    return (await page.locator(camera).count()) === 1;
  }, 60_000);
  await waitForFramesIncreasing(page, camera, 1, { timeoutMs: 60_000 });
}

test('aiortc and Chromium decode each other through the SFU', { timeout: 240_000 }, async (t) => {
  const step = steps(t);
  assert.ok(existsSync(PYTHON), `aiortc's Python at ${PYTHON} (scripts/test installs it)`);
  const created = await server.schedule('ivy@example.com', 'aiortc interop', [
    { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
    { email: 'aio@example.com', role: 'interviewer' },
  ]);
  step('aiortc joins and publishes');
  const aiortc = startAiortc(created.interview.id);
  try {
    const ivy = await (await browser.newContext()).newPage();
    await server.signIn(ivy, 'ivy@example.com');
    await server.enterRoom(ivy, created.interview.id);

    step("Chromium decodes aiortc's camera");
    await decodesAiortcCamera(ivy, aiortc);
    await ivy.locator(`audio[aria-label="Aio Bot's microphone"]`).waitFor({ state: 'attached' });

    step("aiortc decodes Chromium's camera and microphone");
    await waitFor("aiortc decoding Ivy's camera and microphone", () => {
      const report = aiortc.report();
      const tracks = Object.values(report?.tracks ?? {});
      const video = tracks.find((track) => track.kind === 'video');
      const audio = tracks.find((track) => track.kind === 'audio');
      assert.ok(video?.frames > 30 && video.width > 0, `decoded so far: ${JSON.stringify(report)}`);
      assert.ok(audio?.frames > 30, `decoded so far: ${JSON.stringify(report)}`);
      return true;
    }, 60_000);
  } finally {
    aiortc.stop();
  }
});

test('an H.264-only camera from aiortc is offered to Chromium in H.264 alone, and decoded', { timeout: 240_000 }, async (t) => {
  const step = steps(t);
  assert.ok(existsSync(PYTHON), `aiortc's Python at ${PYTHON} (scripts/test installs it)`);
  const created = await server.schedule('ivy@example.com', 'aiortc codecs', [
    { email: 'cas2@example.com', display_name: 'Casey Candidate', role: 'candidate' },
    { email: 'aio@example.com', role: 'interviewer' },
  ]);
  step('aiortc publishes its camera in H.264 alone');
  const h264 = startAiortc(created.interview.id, 'aio@example.com', ['--send-video', 'H264']);
  try {
    const ivy = await (await browser.newContext()).newPage();
    // The subscriber offers the server sends Ivy's page.
    await ivy.addInitScript(() => {
      window.__e2eOffers = [];
      const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
      Object.defineProperty(WebSocket.prototype, 'onmessage', {
        set(handler) {
          onmessage.set.call(this, (event) => {
            try {
              const message = JSON.parse(event.data);
              if (message.type === 'subscriber_offer') window.__e2eOffers.push(message.sdp);
            } catch {}
            return handler(event);
          });
        },
        get() {
          return onmessage.get.call(this);
        },
      });
    });
    await server.signIn(ivy, 'ivy@example.com');
    await server.enterRoom(ivy, created.interview.id);

    step('Chromium decodes it, offered in H.264 alone');
    await decodesAiortcCamera(ivy, h264);
    const offers = await ivy.evaluate(() => window.__e2eOffers);
    const videoCodecs = offers
      .at(-1)
      .split(/\r?\n(?=m=)/)
      .filter((line) => line.startsWith('m=video'))
      .map((line) => [...line.matchAll(/a=rtpmap:\d+ ([^/]+)\//g)].map((m) => m[1]));
    assert.ok(
      videoCodecs.some((codecs) => codecs.length > 0 && codecs.every((c) => c === 'H264' || c === 'rtx')),
      `an m-line offering H.264 alone: ${JSON.stringify(videoCodecs)}`,
    );
  } finally {
    h264.stop();
  }
});
