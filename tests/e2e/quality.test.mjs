// What people see, measured in real browsers: a large tile gets the camera's full-size simulcast
// layer (1280×720), a tile that shrinks gets a smaller layer and back, and the third person to
// join a room sees the others' pictures soon after pressing "Join room".
//
// The figures (time to the full layer, layer switch times, join time p50/p95 over ten joins and
// where that time goes) are printed as test diagnostics and copied into docs/PERFORMANCE.md. The
// tests assert what is seen, never how fast: a busy machine is slower, not wrong.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { spawn } from 'node:child_process';
import { FAKE_PARTICIPANT, PASSWORD, launchBrowser, outboundLayers, startServer, steps, waitFor } from './harness.mjs';

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

/** Opens the candidate's invite in its own context and lands on the interview page (`title`). */
async function candidatePage(invite, title, options) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  await page.goto(invite.url);
  await page.getByRole('button', { name: 'Continue to the interview' }).click();
  // Signed in only once the interview page shows: a room opened sooner asks to sign in.
  await page.getByRole('heading', { name: title }).waitFor();
  return page;
}

/** An interviewer signed in, in a context of their own. */
async function interviewerPage(email, options) {
  const page = await (await browser.newContext(options)).newPage();
  await server.signIn(page, email);
  return page;
}

/** The decoded size of someone's camera on a page, `[0, 0]` before the first frame. */
function cameraSize(page, name) {
  return page
    .locator(`video[aria-label="${name}'s camera"]`)
    .evaluate((v) => [v.videoWidth, v.videoHeight])
    .catch(() => [0, 0]);
}

/** Waits until `name`'s camera decodes at `width`; returns the milliseconds it took from `since`. */
async function waitForWidth(page, name, width, since) {
  await waitFor(`${name}'s camera at ${width} px wide`, async () => {
    const [w, h] = await cameraSize(page, name);
    assert.equal(w, width, `decoding ${w}×${h}`);
    return true;
  }, 60_000, 20);
  return Date.now() - since;
}

/** What a page's connections received on video: PLIs it sent and keyframes it decoded. */
function inboundCounters(page) {
  return page.evaluate(async () => {
    const totals = { plis: 0, keyframes: 0 };
    for (const pc of window.__e2ePeerConnections ?? []) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
          totals.plis += r.pliCount ?? 0;
          totals.keyframes += r.keyFramesDecoded ?? 0;
        }
      });
    }
    return totals;
  });
}

test('a large tile shows the full 1280×720 layer; a smaller tile a smaller one', { timeout: 300_000 }, async (t) => {
  const step = steps(t);
  const created = await server.schedule('ivy@example.com', 'Full resolution', [
    { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
  ]);
  const cas = await candidatePage(created.invites[0], 'Full resolution');
  const ivy = await interviewerPage('ivy@example.com', { viewport: { width: 1600, height: 900 } });
  try {
    await server.enterRoom(cas, created.interview.id);
    const joined = Date.now();
    await server.enterRoom(ivy, created.interview.id);

    step('Casey publishes three layers, the top one at 1280×720');
    await waitFor("Casey's three simulcast layers, the full one at 1280×720", async () => {
      const layers = await outboundLayers(cas);
      const full = layers.find((l) => l.rid === 'f');
      assert.equal(layers.length, 3, JSON.stringify(layers));
      assert.ok(full && full.width === 1280 && full.height === 720 && full.bytes > 0, JSON.stringify(layers));
      return true;
    });

    step("Ivy's large tile decodes the full layer");
    const toFull = await waitForWidth(ivy, 'Casey Candidate', 1280, joined);
    assert.deepEqual(await cameraSize(ivy, 'Casey Candidate'), [1280, 720]);
    t.diagnostic(`full layer (1280×720) decoded ${toFull} ms after Ivy pressed "Join room"`);

    // A narrow window makes two tiles side by side under 560 px wide: the middle layer.
    step('the window narrows: the tile drops to the middle layer');
    let before = await inboundCounters(ivy);
    let since = Date.now();
    await ivy.setViewportSize({ width: 600, height: 900 });
    const down = await waitForWidth(ivy, 'Casey Candidate', 640, since);
    let after = await inboundCounters(ivy);
    t.diagnostic(
      `switch down to 640×360 shown ${down} ms after the resize ` +
        `(keyframes decoded ${after.keyframes - before.keyframes}, PLIs sent ${after.plis - before.plis})`,
    );

    step('the window widens again: back to the full layer');
    before = await inboundCounters(ivy);
    since = Date.now();
    await ivy.setViewportSize({ width: 1600, height: 900 });
    const up = await waitForWidth(ivy, 'Casey Candidate', 1280, since);
    after = await inboundCounters(ivy);
    t.diagnostic(
      `switch up to 1280×720 shown ${up} ms after the resize ` +
        `(keyframes decoded ${after.keyframes - before.keyframes}, PLIs sent ${after.plis - before.plis})`,
    );
  } finally {
    await ivy.context().close();
    await cas.context().close();
  }
});

test('layer switches of a publisher that answers keyframe requests at once', { timeout: 180_000 }, async (t) => {
  // The same resizes with our Rust test participant publishing (layers 160, 320 and 640 wide,
  // keyframes on request): what the switch costs in the SFU and the viewer, without a second
  // Chromium encoding 720p on the same two cores.
  const step = steps(t);
  const created = await server.schedule('ivy@example.com', 'Switches', [
    { email: 'cas4@example.com', display_name: 'Casey Candidate', role: 'candidate' },
    { email: 'obi@example.com', role: 'interviewer' },
  ]);
  const bot = spawn(
    FAKE_PARTICIPANT,
    ['--base', server.base, '--email', 'obi@example.com', '--interview', created.interview.id, '--seconds', '170'],
    { env: { ...process.env, SIGHTLINE_FAKE_PASSWORD: PASSWORD }, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const ivy = await interviewerPage('ivy@example.com', { viewport: { width: 1600, height: 900 } });
  try {
    await server.enterRoom(ivy, created.interview.id);
    step("Ivy's large tile shows the bot's full layer");
    await waitForWidth(ivy, 'Obi Interviewer', 640, Date.now());
    const times = { down: [], up: [] };
    for (let round = 1; round <= 10; round += 1) {
      step(`switch round ${round}`);
      let since = Date.now();
      await ivy.setViewportSize({ width: 600, height: 900 });
      times.down.push(await waitForWidth(ivy, 'Obi Interviewer', 320, since));
      since = Date.now();
      await ivy.setViewportSize({ width: 1600, height: 900 });
      times.up.push(await waitForWidth(ivy, 'Obi Interviewer', 640, since));
    }
    const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    t.diagnostic(
      `switch down shown after (ms): ${times.down.join(', ')} (median ${median(times.down)}); ` +
        `up: ${times.up.join(', ')} (median ${median(times.up)})`,
    );
  } finally {
    bot.kill('SIGTERM');
    await ivy.context().close();
  }
});

/** The stages `markStage` records, in the order they usually happen. */
const STAGES = [
  'grant',
  'socket_open',
  'joined',
  'publish_offer',
  'publish_answer',
  'subscriber_offer',
  'subscriber_answer',
  'subscriber_ice_connected',
  'subscriber_connected',
  'remote_track',
];

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

test('the third person to join sees both others soon after pressing "Join room"', { timeout: 600_000 }, async (t) => {
  const step = steps(t);
  const created = await server.schedule('ivy@example.com', 'Join time', [
    { email: 'cas3@example.com', display_name: 'Casey Candidate', role: 'candidate' },
    { email: 'obi@example.com', role: 'interviewer' },
  ]);
  const id = created.interview.id;
  // The two already in the room are our Rust test participants, publishing pre-encoded Opus and
  // three-layer VP8: on this two-core machine two more browsers encoding 720p would starve the
  // joiner's browser, and the figure would measure the machine, not the join.
  const bots = ['ivy@example.com', 'obi@example.com'].map((email) =>
    spawn(FAKE_PARTICIPANT, ['--base', server.base, '--email', email, '--interview', id, '--seconds', '600'], {
      env: { ...process.env, SIGHTLINE_FAKE_PASSWORD: PASSWORD },
      stdio: ['ignore', 'inherit', 'inherit'],
    }),
  );
  const cas = await candidatePage(created.invites[0], 'Join time');
  try {
    const runs = [];
    // Join 0 waits for the participants to be publishing and warms the browser up; it is not
    // counted.
    for (let run = 0; run <= 10; run += 1) {
      step(run === 0 ? 'a first join, not counted' : `join ${run} of 10`);
      await cas.goto(`${server.base}/interviews/${id}/room`);
      const join = cas.getByRole('button', { name: 'Join room' });
      await join.waitFor();
      await cas.waitForFunction(() => !document.querySelector('button[disabled]'));
      await cas.evaluate(() => performance.clearMarks());
      await join.click();
      // Measured in the page, at every animation frame: from the click to the first decoded
      // frame of the first and of the last of the two remote cameras.
      const seen = await cas.waitForFunction(
        () => {
          const [start] = performance.getEntriesByName('sightline:join');
          if (!start) return null;
          const cameras = [...document.querySelectorAll(`video[aria-label$="'s camera"]`)];
          const times = (window.__e2eFirstFrames ??= new Map());
          for (const video of cameras) {
            if (!times.has(video) && video.getVideoPlaybackQuality().totalVideoFrames > 0) {
              times.set(video, performance.now());
            }
          }
          const decoded = cameras.filter((v) => times.has(v)).map((v) => times.get(v) - start.startTime);
          if (decoded.length < 2) return null;
          const marks = Object.fromEntries(
            performance
              .getEntriesByType('mark')
              .filter((m) => m.name.startsWith('sightline:'))
              .map((m) => [m.name.slice('sightline:'.length), Math.round(m.startTime - start.startTime)])
              .reverse(),
          );
          window.__e2eFirstFrames = new Map();
          return { first: Math.min(...decoded), all: Math.max(...decoded), marks };
        },
        null,
        { polling: 'raf', timeout: 60_000 },
      );
      const figures = await seen.jsonValue();
      if (run > 0) runs.push(figures);
      const marks = STAGES.filter((s) => s in figures.marks).map((s) => `${s} ${figures.marks[s]}`);
      t.diagnostic(`join ${run}: first picture ${Math.round(figures.first)} ms, both ${Math.round(figures.all)} ms (${marks.join(', ')})`);
      await cas.getByRole('button', { name: 'Leave', exact: true }).click();
      await cas.waitForURL(/\/interviews\/[^/]+$/);
    }
    const first = runs.map((r) => r.first);
    const all = runs.map((r) => r.all);
    t.diagnostic(
      `first remote picture: p50 ${Math.round(percentile(first, 50))} ms, p95 ${Math.round(percentile(first, 95))} ms; ` +
        `both: p50 ${Math.round(percentile(all, 50))} ms, p95 ${Math.round(percentile(all, 95))} ms`,
    );
    const stageMedians = STAGES.map((s) => {
      const values = runs.flatMap((r) => (s in r.marks ? [r.marks[s]] : []));
      return values.length ? `${s} ${percentile(values, 50)}` : null;
    }).filter(Boolean);
    t.diagnostic(`median stage times after the click (ms): ${stageMedians.join(', ')}`);
  } finally {
    for (const bot of bots) bot.kill('SIGTERM');
    await cas.context().close();
  }
});
