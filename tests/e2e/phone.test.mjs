// The candidate's phone as a second camera, in real browsers: the candidate opens "Add phone
// camera" in the room, a third browser context that looks like a phone reads the QR code from
// the screen, consents and shares its (fake) camera; the interviewer sees the phone's video
// decoding and "Phone connected" on both sides, the phone sending 1280×720 at no more than 15 fps.
// A second phone replaces the first, closing the phone's page reads "Phone disconnected" at
// once (a leave, not a drop), and used or expired codes show an error page.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  artifacts,
  axeViolations,
  launchBrowser,
  startServer,
  limitedSeconds,
  outboundLayers,
  phoneContext,
  scanPairing,
  sharePhone,
  steps,
  waitFor,
  waitForFramesIncreasing,
} from './harness.mjs';

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

/** The phone's video decodes, and more frames keep coming. */
function assertPhoneVideoPlays(page, label) {
  return waitForFramesIncreasing(page, `video[aria-label="${label}"]`, 1);
}

/** WCAG contrast ratio of two computed CSS colours (`rgb(…)` / `rgba(…)`, opaque). */
function contrast(foreground, background) {
  const luminance = (css) => {
    const [r, g, b] = css.match(/[\d.]+/g).slice(0, 3).map(Number).map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [light, dark] = [luminance(foreground), luminance(background)].sort((a, b) => b - a);
  return (light + 0.05) / (dark + 0.05);
}

/**
 * An interviewer's buttons on a candidate's tile cover nothing of it (they sit under the
 * picture), and the phone status on the tile is readable: WCAG AA contrast (4.5:1).
 */
async function checkTileLayout(page, name) {
  const tile = page.locator('figure.tile', { hasText: `${name} ·` });
  const box = await tile.boundingBox();
  const buttons = page.getByRole('group', { name: `Moderate ${name}` }).getByRole('button');
  assert.ok((await buttons.count()) >= 3, 'add or remove phone, mute and remove');
  for (const button of await buttons.all()) {
    const b = await button.boundingBox();
    const apart = b.y >= box.y + box.height || b.y + b.height <= box.y || b.x >= box.x + box.width || b.x + b.width <= box.x;
    assert.ok(apart, `"${await button.innerText()}" lies over ${name}'s tile`);
  }
  const status = tile.locator('.phone-status');
  const [color, background] = await status.evaluate((el) => {
    const style = getComputedStyle(el);
    return [style.color, style.backgroundColor];
  });
  const ratio = contrast(color, background);
  assert.ok(ratio >= 4.5, `phone status "${await status.innerText()}": contrast ${ratio.toFixed(2)}:1 (${color} on ${background})`);
}

test('a phone pairs by QR code and streams to the interviewers as the candidate\'s second camera', { timeout: 240_000 }, async (t) => {
  const step = steps(t);
  const created = await server.schedule('ivy@example.com', 'Phone test', [{ email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' }]);
  const interviewId = created.interview.id;

  const ivy = await (await browser.newContext()).newPage();
  await server.signIn(ivy, 'ivy@example.com');
  const cas = await (await browser.newContext()).newPage();
  await cas.goto(created.invites[0].url);
  await cas.getByRole('button', { name: 'Continue to the interview' }).click();
  await cas.getByRole('heading', { name: 'Phone test' }).waitFor();
  await server.enterRoom(ivy, interviewId);
  await server.enterRoom(cas, interviewId);

  // The candidate opens "Add phone camera"; a phone scans the code and shares its camera.
  step('a phone pairs by QR code');
  const first = await scanPairing(cas);
  assert.match(first.url, new RegExp(`^${server.base}/pair/[A-Za-z0-9_-]{43}$`));
  await cas.screenshot({ path: join(artifacts, 'phone-pairing-dialog.png') });
  const phoneOne = await phoneContext(browser);
  const phone1 = await phoneOne.newPage();
  await sharePhone(phone1, first.url);
  await phone1.screenshot({ path: join(artifacts, 'phone-sharing.png') });
  // The phone's page, sharing, has no serious accessibility violation (axe).
  const onPhone = await axeViolations(phone1);
  assert.deepEqual(onPhone, [], `the phone's page:\n${onPhone.join('\n')}`);
  await cas.getByRole('button', { name: 'Close' }).click();

  // Interviewers see "<candidate> — phone" decoding, and both sides say it is connected.
  step('both sides see the phone');
  await assertPhoneVideoPlays(ivy, 'Casey Candidate — phone');
  await assertPhoneVideoPlays(cas, 'Your phone camera');
  await ivy.getByRole('status').filter({ hasText: 'Phone connected' }).first().waitFor({ timeout: 15_000 });
  await cas.getByRole('status').filter({ hasText: 'Phone connected' }).first().waitFor({ timeout: 15_000 });
  await ivy.screenshot({ path: join(artifacts, 'phone-in-room.png'), fullPage: true });
  await checkTileLayout(ivy, 'Casey Candidate');
  // The phone captures 1280×720 at no more than 15 fps and sends its full layer at that size,
  // unless Chromium says its encoder is limited (CPU or bandwidth, as on a busy machine).
  const capture = await phone1.evaluate(() => document.querySelector('video')?.srcObject?.getVideoTracks()[0]?.getSettings());
  assert.ok(capture?.width === 1280 && capture?.height === 720 && capture?.frameRate <= 15, JSON.stringify(capture));
  await waitFor("the phone's full layer at 1280×720, or its encoder limited", async () => {
    const layers = await outboundLayers(phone1);
    const full = layers.find((l) => l.rid === 'f');
    const { cpu, bandwidth } = await limitedSeconds(phone1);
    assert.ok((full?.width === 1280 && full.height === 720 && full.bytes > 0) || cpu + bandwidth > 0, JSON.stringify(layers));
    return true;
  });
  const phoneLayers = await outboundLayers(phone1);
  const fps = Math.max(...phoneLayers.map((l) => l.fps ?? 0));
  assert.ok(fps > 0 && fps <= 16, `the phone sends ${fps} frames per second: ${JSON.stringify(phoneLayers)}`);


  // A second phone, paired with the typed code, replaces the first.
  step('a second phone replaces the first');
  const second = await scanPairing(cas);
  const phoneTwo = await phoneContext(browser);
  const phone2 = await phoneTwo.newPage();
  await phone2.goto(`${server.base}/pair`);
  await phone2.getByLabel('Pairing code').fill(second.code.toLowerCase());
  await phone2.getByRole('button', { name: 'Continue' }).click();
  await phone2.getByRole('button', { name: 'Share camera' }).click();
  await phone2.getByText('Sharing this camera with the interview').waitFor({ timeout: 15_000 });
  await phone1.getByText('Another phone was paired').waitFor({ timeout: 15_000 });
  await cas.getByRole('button', { name: 'Close' }).click();
  await assertPhoneVideoPlays(ivy, 'Casey Candidate — phone');
  assert.equal(await ivy.locator('figure.tile.phone').count(), 1, 'one phone per candidate');
  await phoneOne.close();

  // The phone's page is closed: a leave, not a lost network. Both sides go straight from
  // connected to "Phone disconnected", never through the resume window's "reconnecting".
  step('the phone page is closed');
  for (const page of [ivy, cas]) {
    await page.evaluate(() => {
      const seen = (window.__e2ePhoneStatuses = []);
      const note = () => {
        for (const el of document.querySelectorAll('.phone-status')) {
          if (seen.at(-1) !== el.textContent) seen.push(el.textContent);
        }
      };
      new MutationObserver(note).observe(document.body, { subtree: true, childList: true, characterData: true });
      note();
    });
  }
  const closedAt = Date.now();
  await phone2.close();
  for (const page of [ivy, cas]) {
    await page.getByRole('status').filter({ hasText: 'Phone disconnected' }).first().waitFor({ timeout: 60_000 });
    const statuses = await page.evaluate(() => window.__e2ePhoneStatuses);
    assert.ok(!statuses.includes('Phone reconnecting'), `statuses seen: ${statuses.join(' → ')}`);
  }
  t.diagnostic(`"Phone disconnected" on both sides ${Date.now() - closedAt} ms after the phone page closed`);
  await phoneTwo.close();

  // Used and expired codes show an error page, and nothing changes.
  step('used and expired codes');
  const phoneThree = await phoneContext(browser);
  const phone3 = await phoneThree.newPage();
  await phone3.goto(first.url);
  await phone3.getByRole('heading', { name: 'Pairing problem' }).waitFor();
  await phone3.getByText('already been used').waitFor();
  const third = await scanPairing(cas);
  server.sql(`UPDATE phone_pairings SET expires_at = ${Math.floor(Date.now() / 1000) - 1} WHERE used_at IS NULL AND revoked_at IS NULL`);
  await phone3.goto(third.url);
  await phone3.getByText('has expired').waitFor();
  await phone3.goto(`${server.base}/pair/not-a-real-code`);
  await phone3.getByText('is not valid').waitFor();
  assert.equal(await phone3.locator('video').count(), 0, 'nothing is shared from an error page');
  await phoneThree.close();
});
