// Starts a real sightline server for browser tests and launches Debian's Chromium.
//
// The server runs the binary given in SIGHTLINE_BIN (default: the debug build) on a free loopback
// port, with a fresh SQLite data directory, so each test file starts from nothing.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
export const artifacts = join(here, '.artifacts');
mkdirSync(artifacts, { recursive: true });

const BIN = process.env.SIGHTLINE_BIN ?? join(repo, 'target', 'debug', 'sightline');
/** The Rust participant that publishes real media (benches/fake). */
export const FAKE_PARTICIPANT =
  process.env.SIGHTLINE_FAKE_PARTICIPANT_BIN ?? join(repo, 'target', 'debug', 'sightline-fake-participant');
export const PASSWORD = 'correct horse battery staple';

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function waitFor(url, deadlineMs) {
  const until = Date.now() + deadlineMs;
  let lastError;
  while (Date.now() < until) {
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`server did not become ready at ${url}: ${lastError}`);
}

/**
 * Starts sightline; returns { base, dataDir, createUser(email, name, role), sql(statement),
 * kill(), stop() }. Given the `dataDir` of a server that was killed, starts it again on its data.
 */
export async function startServer({ dataDir: reuse } = {}) {
  const port = await freePort();
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
    SIGHTLINE__LOG__FILTER: 'warn',
  };
  const child = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor(`${base}/readyz`, 30_000);
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
    /** Signs in through the page and waits for the dashboard. */
    async signIn(page, email) {
      await page.goto(`${base}/signin`);
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Your interviews' }).waitFor();
    },
    /** Opens an interview's room, waits for the devices, joins. */
    async enterRoom(page, interviewId) {
      await page.goto(`${base}/interviews/${interviewId}/room`);
      const join = page.getByRole('button', { name: 'Join room' });
      await join.waitFor();
      await page.waitForFunction(() => !document.querySelector('button[disabled]'));
      await join.click();
      await page.getByRole('heading', { name: 'Interview room' }).waitFor();
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

/** Debian's Chromium, headless, with fake media devices. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
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
