// Starts a real sightline server for browser tests and launches Debian's Chromium.
//
// The server runs the binary given in SIGHTLINE_BIN (default: the debug build) on a free loopback
// port, with a fresh SQLite data directory, so each test file starts from nothing.
//
// Tests wait for states, not for time: `waitFor` polls a condition up to a generous deadline and
// fails naming what it waited for. Each test has its own timeout (no per-file one), and a long
// test marks its steps with `steps`, so one that hangs says where.

import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect as connectTcp, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import jsQR from 'jsqr';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
export const artifacts = join(here, '.artifacts');
mkdirSync(artifacts, { recursive: true });

const BIN = process.env.SIGHTLINE_BIN ?? join(repo, 'target', 'debug', 'sightline');
/** The Rust participant that publishes real media (benches/fake). */
export const FAKE_PARTICIPANT =
  process.env.SIGHTLINE_FAKE_PARTICIPANT_BIN ?? join(repo, 'target', 'debug', 'sightline-fake-participant');
export const PASSWORD = 'correct horse battery staple';

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Polls `condition` until it returns something truthy, and returns that. The condition may throw
 * (an assertion on what it sees so far): it is tried again, and the last error explains a
 * failure. After `timeoutMs` it fails naming `label`, what the test was waiting for; a single
 * try that hangs counts against the deadline too.
 */
export async function waitFor(label, condition, timeoutMs = 30_000, everyMs = 250) {
  const until = Date.now() + timeoutMs;
  const timedOut = Symbol('timed out');
  let last;
  for (;;) {
    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(() => resolve(timedOut), Math.max(0, until - Date.now()));
    });
    try {
      const value = await Promise.race([Promise.resolve().then(condition), deadline]);
      if (value === timedOut) break;
      if (value) return value;
      last = undefined;
    } catch (err) {
      last = err;
    } finally {
      clearTimeout(timer);
    }
    if (Date.now() >= until) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  const why = last ? `: ${last.message ?? last}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}${why}`, { cause: last });
}

/**
 * A long test's step log: `step('…')` marks where the test is. The marks are shown with the
 * test's result, with the seconds since it began, so a test that times out names the step it
 * was in (the last one), and a slow run shows which steps took the time.
 */
export function steps(t) {
  const began = Date.now();
  return (label) => t.diagnostic(`${((Date.now() - began) / 1000).toFixed(1)} s: ${label}`);
}

/**
 * Waits until `count` videos match `selector` and each has decoded more frames than when this
 * wait first saw it decoding: media keeps arriving. An element replaced meanwhile (its track
 * changed) is counted afresh. A failure says what each tile looks like on the page (whether it
 * is in view, its width in CSS pixels, its badges), what the page's connections received, and
 * what `context()` (if given) adds, such as what the publishers send; those are gathered once,
 * at the deadline, not on every poll.
 */
export async function waitForFramesIncreasing(page, selector, count, { timeoutMs = 30_000, context = null } = {}) {
  await page.evaluate(() => {
    window.__e2eFramesSeen = new WeakMap();
  });
  try {
    await waitFor(
      `${count} × ${selector} decoding more and more frames`,
      async () => {
        const frames = await page.evaluate((s) => {
          // A reloaded page counts afresh.
          const seen = (window.__e2eFramesSeen ??= new WeakMap());
          return [...document.querySelectorAll(s)].map((video) => {
            const now = video.getVideoPlaybackQuality().totalVideoFrames;
            if (now > 0 && !seen.has(video)) seen.set(video, now);
            return { first: seen.get(video) ?? 0, now };
          });
        }, selector);
        const increasing = frames.length === count && frames.every((f) => f.first > 0 && f.now > f.first);
        assert.ok(increasing, `frames (first seen -> now): ${frames.map((f) => `${f.first} -> ${f.now}`).join(', ')}`);
        return true;
      },
      timeoutMs,
    );
  } catch (err) {
    // What the tiles show and what the connections received say whether the page asked for no
    // video, the server stopped sending, or the browser stopped decoding.
    const tiles = await page
      .evaluate((s) =>
        [...document.querySelectorAll(s)].map((video) => {
          const box = video.getBoundingClientRect();
          const inView = box.bottom > 0 && box.right > 0 && box.top < innerHeight && box.left < innerWidth;
          // The tile's badges: a camera the server stopped receiving says so.
          const badges = [...(video.closest('figure')?.querySelectorAll('.badge') ?? [])].map((b) => b.textContent);
          return `${video.getAttribute('aria-label')}: ${inView ? 'in view' : 'out of view'}, ${Math.round(box.width)} CSS px, badges [${badges.join(', ')}]`;
        }),
      selector)
      .catch((e) => [`(no tiles: ${e})`]);
    const received = await inboundVideo(page);
    const more = context ? `; ${await context().catch((e) => `(context failed: ${e})`)}` : '';
    throw new Error(`${err.message}; tiles: ${tiles.join('; ')}; received: ${received}${more}`, { cause: err });
  }
}

/**
 * Starts sightline; returns { base, dataDir, createUser(email, name, role), sql(statement),
 * kill(), stop() }. Given the `dataDir` of a server that was killed, starts it again on its data;
 * given a `port`, listens there (with `env` to choose the address).
 */
export async function startServer({ dataDir: reuse, env: extraEnv = {}, port: given } = {}) {
  const port = given ?? (await freePort());
  const dataDir = reuse ?? mkdtempSync(join(tmpdir(), 'sightline-e2e-'));
  const base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    SIGHTLINE__HTTP__ADDR: `127.0.0.1:${port}`,
    SIGHTLINE__DATA__DIR: dataDir,
    SIGHTLINE__PUBLIC__BASE_URL: base,
    // The browser flows sign in several accounts from one address within seconds.
    SIGHTLINE__AUTH__RATE_LIMIT__PER_IP_BURST: '1000',
    SIGHTLINE__AUTH__RATE_LIMIT__PER_ACCOUNT_BURST: '100',
    SIGHTLINE__LOG__FILTER: process.env.SIGHTLINE_E2E_LOG ?? 'warn',
    // The face models scripts/test installs (the server runs from this folder, not the repo's).
    SIGHTLINE__PROCTORING__MODELS_DIR: process.env.SIGHTLINE_MODELS_DIR ?? join(repo, 'models'),
    ...extraEnv,
  };
  const child = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor(`the server to be ready at ${base}/readyz`, async () => (await fetch(`${base}/readyz`)).ok, 30_000, 100);
  return {
    base,
    dataDir,
    createUser(email, name, role) {
      execFileSync(BIN, ['user', 'create', '--email', email, '--name', name, '--role', role, '--password-stdin'], {
        env,
        input: PASSWORD,
        stdio: ['pipe', 'ignore', 'inherit'],
      });
    },
    /** Calls the JSON API; fails the test on an error status. Returns the body (null for 204). */
    async api(method, path, body, token) {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
      return response.status === 204 ? null : response.json();
    },
    /**
     * Schedules an interview starting in ten minutes as the account `email` (an interviewer):
     * returns the creation answer (interview, invite links) and that account's access token.
     */
    async schedule(email, title, participants) {
      const session = await this.api('POST', '/api/auth/login', { email, password: PASSWORD });
      const created = await this.api(
        'POST',
        '/api/interviews',
        {
          title,
          scheduled_start: new Date(Date.now() + 10 * 60 * 1000).toISOString(),
          duration_minutes: 60,
          time_zone: 'UTC',
          participants,
        },
        session.access_token,
      );
      return { ...created, access: session.access_token };
    },
    /** Signs in through the page (at `at`, another address of this server) and waits for the dashboard. */
    async signIn(page, email, at = base) {
      await page.goto(`${at}/signin`);
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Your interviews' }).waitFor();
    },
    /** Opens an interview's room (at `at`, another address of this server), waits for the devices, joins. */
    async enterRoom(page, interviewId, at = base) {
      await page.goto(`${at}/interviews/${interviewId}/room`);
      const join = page.getByRole('button', { name: 'Join room' });
      await join.waitFor().catch(async (error) => {
        // Say what the page showed instead.
        const shown = await page.locator('body').innerText().catch(() => '(unreadable)');
        throw new Error(`no "Join room" at ${page.url()}; the page says: ${shown.slice(0, 600)}`, { cause: error });
      });
      await page.waitForFunction(() => !document.querySelector('button[disabled]'));
      await join.click();
      await page.getByRole('button', { name: 'Leave', exact: true }).waitFor();
    },
    /**
     * The manifest the recorder keeps in its spool while recording `id` (its own record of each
     * take's start, anchors and closed segments), or null when there is none (not started yet, or
     * finished). The recorder replaces the file atomically, so a read sees one whole version.
     */
    spoolManifest(id) {
      try {
        return JSON.parse(readFileSync(join(dataDir, 'spool', id, 'manifest.json'), 'utf8'));
      } catch (err) {
        if (err.code === 'ENOENT') return null;
        throw err;
      }
    },
    /** Runs one SQL statement on the server's SQLite database (to move a row's time). */
    sql(statement) {
      return execFileSync('sqlite3', [join(dataDir, 'sightline.db'), statement], { encoding: 'utf8' });
    },
    /** As a crash would: SIGKILL, no shutdown; the data directory stays for a restart. */
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A private SMTP server (Debian's aiosmtpd) on a free port, writing what it receives into a
 * Maildir; returns { url, messages(), stop() } (`messages()`: every message so far, whole).
 */
export async function startSmtpSink() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sightline-e2e-smtp-'));
  const maildir = join(dir, 'mail');
  const child = spawn(
    '/usr/bin/python3',
    ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${port}`, '-c', 'aiosmtpd.handlers.Mailbox', maildir],
    { stdio: 'ignore' },
  );
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor(`aiosmtpd on port ${port}`, () => canConnect(port), 15_000, 100);
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages() {
      const folder = join(maildir, 'new');
      if (!existsSync(folder)) return [];
      return readdirSync(folder)
        .sort()
        .map((name) => readFileSync(join(folder, name), 'utf8'));
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A private `nats-server -js` on a free port with its own store; returns { url, stop() }.
 */
export async function startNats() {
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), 'sightline-e2e-nats-'));
  const child = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store], {
    stdio: 'ignore',
  });
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor(`nats-server on port ${port}`, () => canConnect(port), 15_000, 100);
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(store, { recursive: true, force: true });
    },
  };
}

function canConnect(port) {
  return new Promise((resolveConnect) => {
    const socket = connectTcp(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolveConnect(true);
    });
    socket.once('error', () => resolveConnect(false));
  });
}

/**
 * A TCP load balancer in front of several servers, as a cluster is deployed: each connection
 * goes to the first of `ports` that accepts it, so the browser behind it keeps one address while
 * the servers behind it die. Returns { base, close() }.
 */
export async function startBalancer(ports) {
  const open = new Set();
  const server = createServer((client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    client.pause();
    const attempt = (i) => {
      if (i >= ports.length) {
        client.destroy();
        return;
      }
      const upstream = connectTcp(ports[i], '127.0.0.1');
      upstream.once('error', () => attempt(i + 1));
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        open.add(upstream);
        upstream.once('close', () => {
          open.delete(upstream);
          client.destroy();
        });
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.once('close', () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  const port = await new Promise((resolveListen) => server.listen(0, '127.0.0.1', () => resolveListen(server.address().port)));
  return {
    base: `http://127.0.0.1:${port}`,
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Debian's Chromium, headless, with fake media devices. */
/**
 * Keeps every RTCPeerConnection a page makes in `window.__e2ePeerConnections`, so a failed media
 * wait can report what each connection received (see `inboundVideo`). Installed in every context
 * before the page's own scripts run; the connections behave exactly as before.
 */
function recordPeerConnections() {
  const Native = window.RTCPeerConnection;
  const made = [];
  window.__e2ePeerConnections = made;
  function Recorded(...args) {
    const pc = new Native(...args);
    made.push(pc);
    return pc;
  }
  Recorded.prototype = Native.prototype;
  Object.setPrototypeOf(Recorded, Native);
  window.RTCPeerConnection = Recorded;
}

/** What each of a page's connections received on its video m-lines (for failure messages). */
export async function inboundVideo(page) {
  return page
    .evaluate(async () => {
      const streams = [];
      for (const pc of window.__e2ePeerConnections ?? []) {
        if (pc.connectionState === 'closed') continue;
        const report = await pc.getStats();
        report.forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video') {
            streams.push(
              `mid ${r.mid}: ${r.packetsReceived ?? 0} packets, ${r.framesDecoded ?? 0} frames ` +
                `(${r.keyFramesDecoded ?? 0} key), ${r.pliCount ?? 0} PLI, ${r.nackCount ?? 0} NACK`,
            );
          }
        });
      }
      return streams.join('; ');
    })
    .catch((err) => `no stats: ${err}`);
}

/** The publisher's simulcast layers as the browser sends them: rid, frame size and rate, bytes. */
export function outboundLayers(page) {
  return page.evaluate(async () => {
    const layers = [];
    for (const pc of window.__e2ePeerConnections ?? []) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'video') {
          layers.push({
            rid: r.rid,
            width: r.frameWidth ?? 0,
            height: r.frameHeight ?? 0,
            fps: r.framesPerSecond ?? 0,
            bytes: r.bytesSent ?? 0,
          });
        }
      });
    }
    return layers;
  });
}

/**
 * Seconds a page's video encoders have spent limited by the CPU or by their bandwidth estimate,
 * summed over its layers: Chromium lowers resolution or drops a simulcast layer then.
 */
export function limitedSeconds(page) {
  return page.evaluate(async () => {
    const seconds = { cpu: 0, bandwidth: 0 };
    for (const pc of window.__e2ePeerConnections ?? []) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'video') {
          seconds.cpu += r.qualityLimitationDurations?.cpu ?? 0;
          seconds.bandwidth += r.qualityLimitationDurations?.bandwidth ?? 0;
        }
      });
    }
    return seconds;
  });
}

/**
 * Waits until a page publishes its camera's full simulcast layer at 1280×720 (Chromium turns the
 * top layer on once its bandwidth estimate allows).
 */
export function waitForFullLayer(page, who) {
  return waitFor(`${who}'s full simulcast layer at 1280×720`, async () => {
    const layers = await outboundLayers(page);
    const full = layers.find((l) => l.rid === 'f');
    assert.ok(full && full.width === 1280 && full.height === 720 && full.bytes > 0, JSON.stringify(layers));
    return true;
  });
}

/**
 * Launches Chromium; with `fakeVideo` (a Y4M file) its fake camera shows that clip, looped. With
 * `executablePath`, that program starts it (a wrapper that runs it in a network namespace); `args`
 * are added to its command line.
 */
export async function launchBrowser({ fakeVideo, executablePath = '/usr/bin/chromium', args = [] } = {}) {
  const browser = await chromium.launch({
    executablePath,
    args: [
      ...args,
      ...(fakeVideo ? [`--use-file-for-fake-video-capture=${fakeVideo}`] : []),
      '--headless',
      '--no-sandbox',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (options) => {
    const context = await newContext(options);
    await context.addInitScript(recordPeerConnections);
    return context;
  };
  return browser;
}

/**
 * Has `page` note from now on whether a status (`role="status"`) saying `text` is ever shown: it
 * may come and go between two of Playwright's polls. `statusWasShown` waits for the note.
 */
export async function watchStatus(page, text) {
  await page.evaluate((text) => {
    const shown = () => [...document.querySelectorAll('[role="status"]')].some((el) => el.textContent.includes(text));
    window.__e2eStatusesSeen ??= {};
    window.__e2eStatusesSeen[text] ||= shown();
    new MutationObserver(() => {
      if (shown()) window.__e2eStatusesSeen[text] = true;
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  }, text);
}

/** Waits until `page` has shown the status `watchStatus` watches for. */
export async function statusWasShown(page, text, timeout = 15_000) {
  await page.waitForFunction((text) => window.__e2eStatusesSeen?.[text] === true, text, { timeout });
}

/**
 * Serious or critical WCAG 2.1 A/AA violations axe-core (run inside the page, no network) finds on
 * `page`, described for a failure message.
 */
export async function axeViolations(page) {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

/** Every visible form control has an accessible name (a label or aria-label). */
export async function unlabelledControls(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => el.type !== 'hidden')
      .filter((el) => !(el.labels && el.labels.length > 0) && !el.getAttribute('aria-label'))
      .map((el) => el.id || el.name || el.outerHTML.slice(0, 60)),
  );
}

/** A context of `browser` that looks like a phone: small portrait screen, touch, a phone's browser. */
export function phoneContext(browser) {
  return browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    userAgent:
      'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36',
  });
}

/** Opens the pairing dialog and reads its QR code off the screen, as a phone camera would. */
export async function scanPairing(page) {
  const dialog = page.getByRole('dialog');
  if (!(await dialog.isVisible())) await page.getByRole('button', { name: 'Add phone camera' }).click();
  const image = dialog.getByRole('img', { name: /QR code/ });
  await image.waitFor();
  await page.waitForFunction(() => document.querySelector('[role="dialog"] img')?.complete);
  const png = PNG.sync.read(await image.screenshot());
  const decoded = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  assert.ok(decoded, 'the QR code on screen decodes');
  const code = await dialog.locator('.code').innerText();
  return { url: decoded.data, code };
}

/** Opens a pairing `url` on `phone`, keeps the rear camera and shares it. */
export async function sharePhone(phone, url) {
  await phone.goto(url);
  await phone.getByRole('heading', { name: 'Phone camera' }).waitFor();
  await phone.getByText('Only this phone').waitFor();
  assert.equal(await phone.getByLabel('Rear camera (recommended)').isChecked(), true, 'rear by default');
  assert.deepEqual(await unlabelledControls(phone), []);
  await phone.getByRole('button', { name: 'Share camera' }).click();
  await phone.getByText('Sharing this camera with the interview').waitFor({ timeout: 15_000 });
}
