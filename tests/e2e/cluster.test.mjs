// Three sightline processes as one cluster (a private nats-server, one PostgreSQL database), with
// a TCP load balancer in front of them per browser, as a deployment has: two Chromium
// participants entering through different nodes meet and see each other (one of them relayed to
// the room's host); the node that only relays is killed (SIGKILL) and its participant resumes
// through another without new media connections; then the room's host is killed and both are
// back in the room with video on the last node, without anyone touching the page. Through all of
// it the two edit one shared document (its room's host holds it; the editor of whoever reached
// another node is carried there), and the code outlives the host.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import {
  freePort,
  launchBrowser,
  startBalancer,
  startNats,
  startServer,
  statusWasShown,
  steps,
  waitFor,
  waitForFramesIncreasing,
  watchStatus,
} from './harness.mjs';

const POSTGRES = process.env.SIGHTLINE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DATABASE = `sightline_e2e_cluster_${process.pid}`;
const METRICS_TOKEN = 'e2e-metrics-token-for-the-cluster-test';
// Short heartbeats, so a dead node is noticed in seconds.
const HEARTBEAT_MS = 500;
const HEARTBEAT_TTL_MS = 2_000;

let nats;
let browser;
const nodes = [];
const balancers = [];

/** `url` with its database name replaced. */
function withDatabase(url, name) {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

function psql(statement) {
  execFileSync('psql', [POSTGRES, '-q', '-c', statement], { stdio: ['ignore', 'ignore', 'inherit'] });
}

before(async () => {
  psql(`DROP DATABASE IF EXISTS ${DATABASE}`);
  psql(`CREATE DATABASE ${DATABASE}`);
  nats = await startNats();
  const ports = [await freePort(), await freePort(), await freePort()];
  // Each browser has its own address for the cluster, preferring a different node.
  balancers.push(await startBalancer([ports[0], ports[1], ports[2]]));
  balancers.push(await startBalancer([ports[1], ports[0], ports[2]]));
  for (const [i, port] of ports.entries()) {
    nodes.push(
      await startServer({
        port,
        env: {
          SIGHTLINE__DATABASE__URL: withDatabase(POSTGRES, DATABASE),
          SIGHTLINE__AUTH__JWT_SECRET: 'e2e-cluster-secret-shared-by-all-three-nodes',
          SIGHTLINE__PUBLIC__BASE_URL: balancers[1].base,
          SIGHTLINE__METRICS__TOKEN: METRICS_TOKEN,
          SIGHTLINE__CLUSTER__NATS_URL: nats.url,
          SIGHTLINE__CLUSTER__NODE_ID: `node-${i + 1}`,
          SIGHTLINE__CLUSTER__REGION: 'eu',
          SIGHTLINE__CLUSTER__HEARTBEAT_MS: String(HEARTBEAT_MS),
          SIGHTLINE__CLUSTER__HEARTBEAT_TTL_MS: String(HEARTBEAT_TTL_MS),
          // The test's end stops the nodes at once rather than waiting for their rooms.
          SIGHTLINE__CLUSTER__MAX_DRAIN_SECS: '0',
        },
      }),
    );
  }
  nodes[0].createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  browser = await launchBrowser();
}, { timeout: 120_000 });

after(async () => {
  await browser?.close();
  for (const node of nodes) await node.stop();
  for (const balancer of balancers) await balancer.close();
  await nats?.stop();
  psql(`DROP DATABASE IF EXISTS ${DATABASE}`);
}, { timeout: 60_000 });

/** A gauge from a node's `/metrics`, or null when the node is down. */
async function gauge(node, name) {
  try {
    const response = await fetch(`${node.base}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    const text = await response.text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : 0;
  } catch {
    return null;
  }
}

/** The indexes of the nodes that host a room now. */
async function hosts(alive) {
  const counts = await Promise.all(alive.map((i) => gauge(nodes[i], 'sightline_rooms')));
  return alive.filter((_, k) => counts[k] > 0);
}

/** How many peer connections the page has made so far. */
const peerConnections = (page) => page.evaluate(() => window.__e2ePeerConnections.length);

const remoteCamera = `video[aria-label$="'s camera"]`;

test('people entering through different nodes meet, and a dead relay or host costs them nothing they must fix', { timeout: 300_000 }, async (t) => {
  const step = steps(t);
  const created = await nodes[0].schedule('ivy@example.com', 'Cluster test', [
    { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
  ]);
  const interviewId = created.interview.id;
  const ivy = await (await browser.newContext()).newPage();
  const cas = await (await browser.newContext()).newPage();
  // Which node each page's connections reach first: its balancer's first choice.
  const pages = [
    { page: ivy, balancer: balancers[0], order: [0, 1, 2] },
    { page: cas, balancer: balancers[1], order: [1, 0, 2] },
  ];

  step('Ivy enters through node 1, Casey through node 2, and they see each other');
  await nodes[0].signIn(ivy, 'ivy@example.com', balancers[0].base);
  await cas.goto(created.invites[0].url);
  await cas.getByRole('button', { name: 'Continue to the interview' }).click();
  await cas.getByRole('heading', { name: 'Cluster test' }).waitFor();
  await nodes[0].enterRoom(ivy, interviewId, balancers[0].base);
  await nodes[0].enterRoom(cas, interviewId, balancers[1].base);
  for (const { page } of pages) await waitForFramesIncreasing(page, remoteCamera, 1);
  let alive = [0, 1, 2];
  const [host] = await waitFor('one node hosting the room', async () => {
    const found = await hosts(alive);
    assert.equal(found.length, 1, `hosts: ${found}`);
    return found;
  });
  t.diagnostic(`the room runs on node ${host + 1}`);

  step('they write in the shared editor through different nodes, and see each other\'s lines');
  const editorOf = (page) => page.getByRole('textbox', { name: 'Shared code editor' });
  const code = (page, text) => page.locator('.cm-content', { hasText: text });
  await editorOf(cas).click();
  await cas.keyboard.type('print("typed through node 2")');
  await code(ivy, 'print("typed through node 2")').waitFor();
  await editorOf(ivy).click();
  await ivy.keyboard.press('ControlOrMeta+End');
  await ivy.keyboard.press('Enter');
  await ivy.keyboard.type('# typed through node 1');
  await code(cas, '# typed through node 1').waitFor();
  // The editor sits below the video: bring the pictures back into view (a hidden tile is not
  // sent).
  for (const { page } of pages) await page.locator(remoteCamera).scrollIntoViewIfNeeded();

  step('the node that only relays someone is killed: they resume through another node');
  // Someone whose first-choice node is not the host is relayed by it.
  const relayed = pages.find((p) => p.order[0] !== host);
  const relay = relayed.order[0];
  assert.ok((await gauge(nodes[relay], 'sightline_cluster_relayed_sessions')) >= 1, 'a relayed session');
  const connectionsBefore = await Promise.all(pages.map((p) => peerConnections(p.page)));
  const reconnecting = relayed.page.getByRole('status').filter({ hasText: 'Reconnecting' });
  // Noted by the page itself: the resume can be over between two of Playwright's polls.
  await watchStatus(relayed.page, 'Reconnecting');
  await nodes[relay].kill();
  alive = alive.filter((i) => i !== relay);
  await statusWasShown(relayed.page, 'Reconnecting');
  // Media never went through the relay: both keep decoding while signaling comes back.
  for (const { page } of pages) await waitForFramesIncreasing(page, remoteCamera, 1);
  await reconnecting.waitFor({ state: 'detached', timeout: 30_000 });
  // The resumed session signals again, through another node: a chat message gets across.
  const other = pages.find((p) => p !== relayed);
  await relayed.page.getByLabel('Message').fill('Still here after the relay died');
  await relayed.page.getByRole('button', { name: 'Send' }).click();
  await other.page.getByText('Still here after the relay died').waitFor();
  // Typing scrolled the chat into view: bring the picture back, or its tile counts as hidden
  // (and is not sent).
  for (const { page } of pages) await page.locator(remoteCamera).scrollIntoViewIfNeeded();
  const connectionsAfter = await Promise.all(pages.map((p) => peerConnections(p.page)));
  assert.deepEqual(connectionsAfter, connectionsBefore, 'no new peer connections: the media was never interrupted');
  for (const { page } of pages) await waitForFramesIncreasing(page, remoteCamera, 1);

  step('the host is killed: both are back in the room with video on the last node');
  const killedAt = Date.now();
  await nodes[host].kill();
  alive = alive.filter((i) => i !== host);
  assert.equal(alive.length, 1);
  for (const { page } of pages) {
    await waitForFramesIncreasing(page, remoteCamera, 1, { timeoutMs: 60_000 });
    // Still in the room: nobody had to press anything.
    await page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ timeout: 1_000 });
  }
  t.diagnostic(`video back on both pages ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the host was killed`);
  const [newHost] = await hosts(alive);
  assert.equal(newHost, alive[0], 'the last node hosts the room');

  step('the code outlived the host: both editors show it and still meet on the last node');
  for (const { page } of pages) await code(page, '# typed through node 1').waitFor({ timeout: 60_000 });
  await editorOf(cas).click();
  await cas.keyboard.press('ControlOrMeta+End');
  await cas.keyboard.type('  # after the host died');
  await code(ivy, '# after the host died').waitFor({ timeout: 60_000 });
});
