// Networks a browser cannot reach the SFU from directly, in real browsers. A coturn the test
// starts on free loopback ports relays everything: the pages are forced to relay-only ICE (as on
// a network that lets nothing but the TURN server through), join through the UI with the TURN
// credentials the server handed out in `joined`, and see each other's video; the connections'
// statistics say the selected path is a relay, over UDP, over TCP and over TLS to the TURN server.
// Over UDP the candidate's phone, relay-only too, joins the same way as her second camera.
// coturn itself refuses credentials that expired or were signed with another secret.
//
// A browser in a network namespace whose UDP is dropped (iptables), on a veth link to the
// server, joins without TURN over ICE-TCP straight to the SFU.
//
// A browser whose only way to the SFU is a lossy, slow link keeps its video playing: through
// jitter that reorders datagrams; at 5% loss with 100 ms round trips NACK/RTX repair it; at 20%
// the server steps it down to a lower layer
// rather than let it freeze, and back up once the link is clean; the other side's screen says
// the link is poor, as the server sees it from RTCP. This kernel has no netem, so the link is a
// seeded UDP relay the test runs between the namespace and the SFU.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  launchBrowser,
  phoneContext,
  scanPairing,
  sharePhone,
  startServer,
  steps,
  waitFor,
  waitForFramesIncreasing,
} from './harness.mjs';

const SECRET = 'e2e-turn-secret-0123456789abcdef';
const TTL_SECS = 600;

let turn;
let server;
let browser;

/** A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both). */
async function freeTcpUdpPort() {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise((resolvePort, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(0, '127.0.0.1', () => {
        const { port: p } = probe.address();
        probe.close(() => resolvePort(p));
      });
    });
    const udpFree = await new Promise((resolveFree) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolveFree(false));
      socket.bind(port, '127.0.0.1', () => socket.close(() => resolveFree(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no port free for both TCP and UDP');
}

/** Starts Debian's coturn with TURN REST credentials (`use-auth-secret`), loopback only. */
async function startTurn() {
  const port = await freeTcpUdpPort();
  const tlsPort = await freeTcpUdpPort();
  const dir = mkdtempSync(join(tmpdir(), 'sightline-turn-'));
  // TURN over TLS needs a certificate: a self-signed one, made for this run.
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  // Relay ports: a block above the listening port, inside the unprivileged range.
  const minPort = 49152 + (port % 1000) * 10;
  const child = spawn(
    'turnserver',
    [
      '-n',
      '--listening-ip', '127.0.0.1',
      '--listening-port', String(port),
      '--relay-ip', '127.0.0.1',
      '--min-port', String(minPort),
      '--max-port', String(minPort + 9),
      '--use-auth-secret',
      '--static-auth-secret', SECRET,
      '--realm', 'sightline.test',
      // The SFU is on loopback here; a production coturn denies private peers (see the README).
      '--allow-loopback-peers',
      '--tls-listening-port', String(tlsPort), '--cert', cert, '--pkey', key,
      '--no-dtls', '--no-cli', '--no-multicast-peers', '--fingerprint',
      '--userdb', join(dir, 'turndb'),
      '--pidfile', join(dir, 'turnserver.pid'),
      '--log-file', 'stdout', '--simple-log',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  // Both streams go to one log, shown only when coturn does not come up.
  for (const stream of [child.stdout, child.stderr]) {
    stream.on('data', (chunk) => {
      log = (log + chunk).slice(-20_000);
    });
  }
  const exited = new Promise((r) => child.once('exit', r));
  await waitFor('coturn to listen', () => /Total General servers|relay ports initialization done|IPv4. TCP listener opened/i.test(log) || null, 15_000, 100).catch((err) => {
    throw new Error(`${err.message}\n${log}`);
  });
  return {
    port,
    tlsPort,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The TURN URLs the server hands out: UDP and TCP to coturn's port, TLS to its TLS port. */
const turnUrls = () => [
  `turn:127.0.0.1:${turn.port}?transport=udp`,
  `turn:127.0.0.1:${turn.port}?transport=tcp`,
  `turns:127.0.0.1:${turn.tlsPort}?transport=tcp`,
];

before(async () => {
  turn = await startTurn();
  server = await startServer({
    env: {
      SIGHTLINE__TURN__URLS: JSON.stringify(turnUrls()),
      SIGHTLINE__TURN__SHARED_SECRET: SECRET,
      SIGHTLINE__TURN__CREDENTIAL_TTL_SECS: String(TTL_SECS),
    },
  });
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  browser = await launchBrowser();
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  await server?.stop();
  await turn?.stop();
}, { timeout: 60_000 });

/**
 * Installed before a page's scripts: every peer connection gathers relay candidates only, through
 * the TURN URLs of one `scheme` (`turn`, `turns`) and `transport`, and the TURN servers the app
 * gives it are kept in `window.__e2eIceServers` for the test to read.
 */
function relayOnly({ scheme, transport }) {
  const Native = window.RTCPeerConnection;
  window.__e2eIceServers = [];
  const restrict = (config = {}) => {
    const servers = config.iceServers ?? [];
    if (servers.length > 0) window.__e2eIceServers.push(servers);
    return {
      ...config,
      iceTransportPolicy: 'relay',
      iceServers: servers.map((s) => ({
        ...s,
        urls: [s.urls].flat().filter((u) => u.startsWith(`${scheme}:`) && u.endsWith(`transport=${transport}`)),
      })),
    };
  };
  function Relayed(config) {
    return new Native(restrict(config));
  }
  Relayed.prototype = Native.prototype;
  Object.setPrototypeOf(Relayed, Native);
  const setConfiguration = Native.prototype.setConfiguration;
  Native.prototype.setConfiguration = function (config) {
    return setConfiguration.call(this, restrict(config));
  };
  window.RTCPeerConnection = Relayed;
}

/** The local candidate of each connected peer connection's selected pair. */
function selectedLocalCandidates(page) {
  return page.evaluate(async () => {
    const found = [];
    for (const pc of window.__e2ePeerConnections ?? []) {
      if (pc.connectionState !== 'connected') continue;
      const report = await pc.getStats();
      let pair;
      report.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
      });
      const local = pair && report.get(pair.localCandidateId);
      found.push(local ? { type: local.candidateType, relayProtocol: local.relayProtocol ?? null } : null);
    }
    return found;
  });
}

/** The password coturn expects for `username` under `secret` (TURN REST API). */
const credentialFor = (secret, username) => createHmac('sha1', secret).update(username).digest('base64');

const RELAYS = [
  { name: 'UDP', scheme: 'turn', transport: 'udp', protocol: 'udp' },
  { name: 'TCP', scheme: 'turn', transport: 'tcp', protocol: 'tcp' },
  // What networks that let only HTTPS out need: TLS to the TURN server (on 443 in production).
  { name: 'TLS', scheme: 'turns', transport: 'tcp', protocol: 'tls' },
];

for (const relay of RELAYS) {
  const transport = relay.protocol;
  test(`two browsers that can only relay meet through coturn over ${relay.name}`, { timeout: 180_000 }, async (t) => {
    const step = steps(t);
    const created = await server.schedule('ivy@example.com', `Relay over ${transport}`, [
      { email: `cas-${transport}@example.com`, display_name: 'Casey Candidate', role: 'candidate' },
    ]);
    // Chromium verifies a TURN server's certificate; this one is self-signed for the test.
    const tls = relay.protocol === 'tls' ? await launchBrowser({ args: ['--ignore-certificate-errors'] }) : null;
    const contexts = [];
    const page = async () => {
      const context = await (tls ?? browser).newContext();
      await context.addInitScript(relayOnly, { scheme: relay.scheme, transport: relay.transport });
      contexts.push(context);
      return context.newPage();
    };
    try {
      const ivy = await page();
      const cas = await page();
      step('both join through the UI, relay-only');
      await server.signIn(ivy, 'ivy@example.com');
      await cas.goto(created.invites[0].url);
      await continueToInterview(cas);
      await server.enterRoom(ivy, created.interview.id);
      await server.enterRoom(cas, created.interview.id);

      step('each sees the other decoding');
      for (const p of [ivy, cas]) await waitForFramesIncreasing(p, `video[aria-label$="'s camera"]`, 1, { timeoutMs: 60_000 });

      step(`every connection's selected path is a relay over ${transport}`);
      for (const p of [ivy, cas]) {
        const selected = await waitFor('both connections connected', async () => {
          const found = await selectedLocalCandidates(p);
          return found.length === 2 && found.every(Boolean) && found;
        });
        assert.deepEqual(selected, [
          { type: 'relay', relayProtocol: transport },
          { type: 'relay', relayProtocol: transport },
        ]);
      }

      step('the credentials were issued for this connection and expire');
      const [servers] = await cas.evaluate(() => window.__e2eIceServers);
      const [{ urls, username, credential }] = servers;
      assert.deepEqual(urls, turnUrls());
      const [expiry, identity] = username.split(':');
      const now = Date.now() / 1000;
      assert.ok(Number(expiry) > now && Number(expiry) <= now + TTL_SECS + 5, `expiry ${expiry}, now ${now}`);
      assert.ok(identity && !identity.includes('@'), `an opaque participant id, not an address: ${identity}`);
      assert.equal(credential, credentialFor(SECRET, username), 'the TURN REST API credential');

      if (relay.protocol === 'udp') {
        step("Casey's phone, relay-only too, joins through coturn as her second camera");
        const { url } = await scanPairing(cas);
        const phoneContextRelayed = await phoneContext(browser);
        await phoneContextRelayed.addInitScript(relayOnly, { scheme: relay.scheme, transport: relay.transport });
        contexts.push(phoneContextRelayed);
        const phone = await phoneContextRelayed.newPage();
        await sharePhone(phone, url);
        await waitForFramesIncreasing(ivy, 'video[aria-label="Casey Candidate — phone"]', 1, { timeoutMs: 60_000 });
        const selected = await waitFor('the phone connected', async () => {
          const found = await selectedLocalCandidates(phone);
          return found.length > 0 && found.every(Boolean) && found;
        });
        assert.ok(selected.every((c) => c.type === 'relay' && c.relayProtocol === 'udp'), JSON.stringify(selected));
        const [[phoneServer]] = await phone.evaluate(() => window.__e2eIceServers);
        assert.notEqual(phoneServer.username, username, 'the phone has a credential of its own');
        assert.equal(phoneServer.credential, credentialFor(SECRET, phoneServer.username));
      }
    } finally {
      for (const context of contexts) await context.close();
      await tls?.close();
    }
  });
}

test('coturn refuses credentials that expired or were signed with another secret', { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${server.base}/signin`);
    const url = `turn:127.0.0.1:${turn.port}?transport=udp`;
    /** Gathers relay candidates with one credential: the candidates and the errors coturn gave. */
    const gather = (username, credential) =>
      page.evaluate(
        async ({ url, username, credential }) => {
          const pc = new RTCPeerConnection({
            iceServers: [{ urls: [url], username, credential }],
            iceTransportPolicy: 'relay',
          });
          const relays = [];
          const errors = [];
          pc.addEventListener('icecandidate', (e) => e.candidate?.candidate && relays.push(e.candidate.type));
          pc.addEventListener('icecandidateerror', (e) => errors.push(e.errorCode));
          pc.createDataChannel('probe');
          await pc.setLocalDescription(await pc.createOffer());
          await new Promise((done) => {
            if (pc.iceGatheringState === 'complete') done();
            pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done());
            setTimeout(done, 20_000);
          });
          pc.close();
          return { relays, errors };
        },
        { url, username, credential },
      );
    const now = Math.floor(Date.now() / 1000);
    const fresh = `${now + 300}:p-probe`;
    const good = await gather(fresh, credentialFor(SECRET, fresh));
    assert.ok(good.relays.includes('relay'), `a fresh credential relays: ${JSON.stringify(good)}`);

    const expired = `${now - 60}:p-probe`;
    const late = await gather(expired, credentialFor(SECRET, expired));
    assert.deepEqual(late.relays, [], `an expired credential gets no relay: ${JSON.stringify(late)}`);
    assert.ok(late.errors.includes(401), `coturn answers 401: ${JSON.stringify(late)}`);

    const forged = await gather(fresh, credentialFor('another-secret-0123456789', fresh));
    assert.deepEqual(forged.relays, [], `a credential under another secret gets no relay: ${JSON.stringify(forged)}`);
    assert.ok(forged.errors.includes(401), `coturn answers 401: ${JSON.stringify(forged)}`);
  } finally {
    await context.close();
  }
});

/**
 * A network namespace joined to this one by a veth pair (server side `hostIp`, client side
 * `clientIp`), whose UDP is dropped both ways when `dropUdp`, and a program that runs Chromium
 * inside it.
 */
function udpBlockedNamespace() {
  return clientNamespace({ dropUdp: true });
}

function clientNamespace({ dropUdp }) {
  const tag = String(process.pid % 10_000);
  const name = `sl-e2e-${tag}`;
  const octet = 1 + (process.pid % 250);
  const hostIp = `10.231.${octet}.1`;
  const clientIp = `10.231.${octet}.2`;
  const [hostEnd, nsEnd] = [`slh${tag}`, `sln${tag}`];
  const run = (...args) => execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  const inside = (...args) => run('ip', 'netns', 'exec', name, ...args);
  const remove = () => {
    for (const args of [['ip', 'netns', 'del', name], ['ip', 'link', 'del', hostEnd]]) {
      try {
        execFileSync(args[0], args.slice(1), { stdio: 'ignore' });
      } catch {
        // Not there (any more).
      }
    }
  };
  remove();
  run('ip', 'netns', 'add', name);
  run('ip', 'link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd);
  run('ip', 'link', 'set', nsEnd, 'netns', name);
  run('ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostEnd);
  run('ip', 'link', 'set', hostEnd, 'up');
  inside('ip', 'addr', 'add', `${clientIp}/30`, 'dev', nsEnd);
  inside('ip', 'link', 'set', nsEnd, 'up');
  inside('ip', 'link', 'set', 'lo', 'up');
  if (dropUdp) {
    inside('iptables', '-A', 'OUTPUT', '-p', 'udp', '-j', 'DROP');
    inside('iptables', '-A', 'INPUT', '-p', 'udp', '-j', 'DROP');
  }
  const dir = mkdtempSync(join(tmpdir(), 'sightline-netns-'));
  const chromium = join(dir, 'chromium-no-udp');
  writeFileSync(chromium, `#!/bin/sh\nexec ip netns exec ${name} /usr/bin/chromium "$@"\n`);
  chmodSync(chromium, 0o755);
  return {
    hostIp,
    clientIp,
    chromium,
    remove() {
      remove();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Chromium inside `net`, for a server it reaches at `net.hostIp:port` over plain HTTP. */
function launchInside(net, port) {
  return launchBrowser({
    executablePath: net.chromium,
    // Cameras need a secure context: plain HTTP counts as one only on loopback.
    args: [`--unsafely-treat-insecure-origin-as-secure=http://${net.hostIp}:${port}`],
  });
}

/**
 * Ivy joins `created`'s room on this host; Casey, in `inside` (a browser in `net`), takes her
 * invite and joins at the server's veth address. Returns both pages.
 */
async function meetAcross(server, inside, net, port, created) {
  const ivy = await (await browser.newContext()).newPage();
  await server.signIn(ivy, 'ivy@example.com');
  await server.enterRoom(ivy, created.interview.id);
  const cas = await (await inside.newContext()).newPage();
  await cas.goto(created.invites[0].url);
  await continueToInterview(cas);
  await server.enterRoom(cas, created.interview.id, `http://${net.hostIp}:${port}`);
  return { ivy, cas };
}

/**
 * Takes the invite open on `page` and waits until the guest session exists (the app moved on to
 * the interview): a navigation before that would leave the page signed out.
 */
async function continueToInterview(page) {
  await page.getByRole('button', { name: 'Continue to the interview' }).click();
  await page.waitForURL((url) => /^\/interviews\/[^/]+$/.test(url.pathname));
}

test('a browser whose network drops UDP joins over ICE-TCP straight to the SFU', { timeout: 240_000 }, async (t) => {
  const step = steps(t);
  const net = udpBlockedNamespace();
  let direct;
  let blocked;
  try {
    // A server the namespace can reach: HTTP and media on the veth address, no TURN.
    const port = await freeTcpUdpPort();
    direct = await startServer({
      env: {
        SIGHTLINE__HTTP__ADDR: `0.0.0.0:${port}`,
        SIGHTLINE__PUBLIC__BASE_URL: `http://${net.hostIp}:${port}`,
        SIGHTLINE__RTC__BIND_IP: net.hostIp,
        // Plain HTTP on an address that is not loopback: the browser drops Secure cookies.
        SIGHTLINE__AUTH__SECURE_COOKIES: 'false',
      },
      port,
    });
    direct.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
    const created = await direct.schedule('ivy@example.com', 'No UDP', [
      { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
    ]);
    blocked = await launchInside(net, port);

    step('Ivy joins from an ordinary network, Casey from one without UDP');
    const { ivy, cas } = await meetAcross(direct, blocked, net, port, created);

    step('each sees the other decoding');
    for (const p of [ivy, cas]) await waitForFramesIncreasing(p, `video[aria-label$="'s camera"]`, 1, { timeoutMs: 60_000 });

    step("Casey's connections run over TCP to the SFU's own candidate, without a relay");
    const paths = await waitFor("Casey's two connections connected", async () => {
      const found = await cas.evaluate(async () => {
        const out = [];
        for (const pc of window.__e2ePeerConnections ?? []) {
          if (pc.connectionState !== 'connected') continue;
          const report = await pc.getStats();
          let pair;
          report.forEach((s) => {
            if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
          });
          const local = pair && report.get(pair.localCandidateId);
          const remote = pair && report.get(pair.remoteCandidateId);
          out.push(local && remote ? { local: [local.candidateType, local.protocol], remote: [remote.candidateType, remote.protocol, remote.port] } : null);
        }
        return out;
      });
      return found.length === 2 && found.every(Boolean) && found;
    });
    for (const path of paths) {
      // An active TCP candidate learns its own port from the server's STUN answer: prflx.
      assert.ok(['host', 'prflx'].includes(path.local[0]) && path.local[1] === 'tcp', JSON.stringify(paths));
      assert.deepEqual(path.remote.slice(0, 2), ['host', 'tcp'], JSON.stringify(paths));
    }
    t.diagnostic(`selected paths: ${JSON.stringify(paths)}`);
  } finally {
    await blocked?.close();
    await direct?.stop();
    net.remove();
  }
});

/** A small seeded generator (mulberry32): the same draws on every run (which datagram meets which
 * draw still depends on timing). */
function seeded(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A UDP relay on `listenIp:port` to the SFU at `upstream`, one upstream socket per client
 * address; what comes from or goes to `impairedIp` is dropped with probability `loss` and held
 * `delayMs` each way (so a round trip gains twice that) plus up to `jitterMs` more, drawn for
 * each datagram (so they also arrive out of order). Others pass untouched.
 */
function lossyRelay({ listenIp, port, upstream, impairedIp }) {
  const random = seeded(0x51e7);
  const link = { loss: 0, delayMs: 0, jitterMs: 0, dropped: 0, passed: 0 };
  const front = createSocket('udp4');
  const flows = new Map();
  let open = true;
  const pass = (address, deliver) => {
    // A datagram held past the relay's end is dropped.
    const send = () => open && deliver();
    if (address !== impairedIp) return send();
    if (random() < link.loss) {
      link.dropped += 1;
      return undefined;
    }
    link.passed += 1;
    const delay = link.delayMs + random() * link.jitterMs;
    return delay > 0 ? setTimeout(send, delay) : send();
  };
  front.on('message', (message, from) => {
    const key = `${from.address}:${from.port}`;
    let flow = flows.get(key);
    if (!flow) {
      if (flows.size >= 64) return;
      flow = createSocket('udp4');
      flow.bind(0, '127.0.0.1');
      flow.on('message', (back) => pass(from.address, () => front.send(back, from.port, from.address)));
      flows.set(key, flow);
    }
    pass(from.address, () => flow.send(message, upstream.port, upstream.address));
  });
  return {
    link,
    listening: new Promise((resolveListening, reject) => {
      front.once('error', reject);
      front.bind(port, listenIp, resolveListening);
    }),
    close() {
      open = false;
      for (const flow of flows.values()) flow.close();
      front.close();
    },
  };
}

/** The inbound video of a page (one remote camera): frames, freezes, layer size, repairs. */
function inboundCamera(page) {
  return page.evaluate(async () => {
    for (const pc of window.__e2ePeerConnections ?? []) {
      if (pc.connectionState !== 'connected') continue;
      let found = null;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video' && (r.framesDecoded ?? 0) > 0) {
          found = {
            frames: r.framesDecoded,
            width: r.frameWidth ?? 0,
            fps: r.framesPerSecond ?? 0,
            freezes: r.freezeCount ?? 0,
            frozenMs: Math.round((r.totalFreezesDuration ?? 0) * 1000),
            nacks: r.nackCount ?? 0,
            plis: r.pliCount ?? 0,
            lost: r.packetsLost ?? 0,
            keyframes: r.keyFramesDecoded ?? 0,
            dropped: r.framesDropped ?? 0,
            received: r.packetsReceived ?? 0,
            repaired: r.retransmittedPacketsReceived ?? 0,
          };
        }
      });
      if (found) return found;
    }
    return null;
  });
}

/**
 * Watches a page's inbound camera for `seconds`: its frames must advance in every `window`
 * seconds (the video keeps playing; the freezes themselves are counted and printed, not
 * judged, since a busy machine adds its own). Returns the stats at the start and at the end.
 */
async function keepsPlaying(page, seconds, window) {
  const samples = [];
  for (let i = 0; i <= seconds; i++) {
    samples.push(await inboundCamera(page));
    if (i < seconds) await new Promise((r) => setTimeout(r, 1_000));
  }
  for (let i = window; i < samples.length; i++) {
    assert.ok(
      samples[i] && samples[i - window] && samples[i].frames > samples[i - window].frames,
      `frames advance in every ${window} s: ${JSON.stringify(samples.map((s) => s?.frames))}`,
    );
  }
  return { first: samples[0], last: samples.at(-1) };
}

test('video keeps playing on a lossy, slow link and steps down a layer at 20% loss', { timeout: 300_000 }, async (t) => {
  const step = steps(t);
  const net = clientNamespace({ dropUdp: false });
  let lossy;
  let relay;
  let inside;
  try {
    // The SFU on loopback, advertising the relay's address too: the namespace reaches it only
    // through the relay; Ivy, on this host, straight.
    const [http, media] = [await freeTcpUdpPort(), await freeTcpUdpPort()];
    lossy = await startServer({
      env: {
        SIGHTLINE__HTTP__ADDR: `0.0.0.0:${http}`,
        SIGHTLINE__PUBLIC__BASE_URL: `http://${net.hostIp}:${http}`,
        SIGHTLINE__AUTH__SECURE_COOKIES: 'false',
        SIGHTLINE__RTC__WORKERS: '1',
        SIGHTLINE__RTC__PORT_RANGE_START: String(media),
        SIGHTLINE__RTC__PORT_RANGE_END: String(media),
        SIGHTLINE__RTC__PUBLIC_IPS: JSON.stringify([net.hostIp]),
        SIGHTLINE__RTC__TCP: 'false',
      },
      port: http,
    });
    relay = lossyRelay({
      listenIp: net.hostIp,
      port: media,
      upstream: { address: '127.0.0.1', port: media },
      impairedIp: net.clientIp,
    });
    await relay.listening;
    lossy.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
    const created = await lossy.schedule('ivy@example.com', 'Lossy link', [
      { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
    ]);
    inside = await launchInside(net, http);

    step('Ivy joins on this host, Casey behind the relay');
    const { ivy, cas } = await meetAcross(lossy, inside, net, http, created);
    await waitForFramesIncreasing(cas, `video[aria-label$="'s camera"]`, 1, { timeoutMs: 60_000 });
    const fec = await cas.evaluate(() =>
      (window.__e2ePeerConnections ?? []).some((pc) => /a=fmtp:\d+ .*useinbandfec=1/.test(pc.remoteDescription?.sdp ?? '')),
    );
    assert.ok(fec, 'Opus in-band FEC is negotiated');

    step("on the clean link Casey gets Ivy's full layer");
    await waitFor("Ivy's 1280-wide layer at Casey", async () => (await inboundCamera(cas))?.width === 1280, 90_000, 500);
    const clean = await keepsPlaying(cas, 10, 3);

    step('5% loss and 100 ms round trips: repaired, still playing');
    Object.assign(relay.link, { loss: 0.05, delayMs: 50 });
    const five = await keepsPlaying(cas, 15, 4);
    assert.ok(five.last.nacks > five.first.nacks, `Casey asked for repairs: ${JSON.stringify(five)}`);

    step('jitter: 40 to 80 ms each way, datagrams out of order, still playing');
    Object.assign(relay.link, { loss: 0, delayMs: 40, jitterMs: 40 });
    const jitter = await keepsPlaying(cas, 10, 3);

    step('20% loss: the lowest layer, still playing');
    Object.assign(relay.link, { loss: 0.2, delayMs: 50, jitterMs: 0 });
    const lowered = await waitFor('a lower layer at 20% loss', async () => {
      const now = await inboundCamera(cas);
      return now && now.width > 0 && now.width < 1280 && now;
    }, 60_000, 500);
    const lowest = await waitFor('the lowest layer at 20% loss', async () => {
      const now = await inboundCamera(cas);
      return now && now.width > 0 && now.width <= 320 && now;
    }, 60_000, 500);
    const twenty = await keepsPlaying(cas, 15, 6);
    assert.ok(twenty.last.width <= 320, `still the lowest layer: ${JSON.stringify(twenty.last)}`);
    // Ivy's screen says so: the server rates Casey's link from its RTCP reports.
    const casTile = ivy.locator('figure.tile', { hasText: 'Casey Candidate' });
    await casTile.getByText('poor connection').waitFor({ timeout: 30_000 });

    step('clean again: back to the full layer');
    Object.assign(relay.link, { loss: 0, delayMs: 0 });
    await waitFor('the full layer again', async () => (await inboundCamera(cas))?.width === 1280, 90_000, 500);
    await casTile.getByText(/(poor|fair) connection/).waitFor({ state: 'detached', timeout: 30_000 });

    const frozen = ({ first, last }) =>
      `${last.freezes - first.freezes} freezes, ${last.frozenMs - first.frozenMs} ms frozen in ${last.frames - first.frames} frames`;
    t.diagnostic(`clean: ${frozen(clean)}; width ${clean.last.width}, ${clean.last.fps} fps`);
    t.diagnostic(`jitter 40-80 ms each way: ${frozen(jitter)}; width ${jitter.last.width}`);
    t.diagnostic(`5% loss, 50 ms each way: ${frozen(five)}; width ${five.last.width}; ${five.last.nacks - five.first.nacks} NACKs`);
    t.diagnostic(
      `20% loss, 50 ms each way: stepped down to ${lowered.width}, then ${lowest.width} wide; then ${frozen(twenty)}; width ${twenty.last.width}, ${twenty.last.fps} fps`,
    );
    const counters = ['frames', 'freezes', 'frozenMs', 'nacks', 'plis', 'lost', 'keyframes', 'dropped', 'received', 'repaired'];
    const delta = ({ first, last }) => Object.fromEntries(counters.map((k) => [k, last[k] - first[k]]));
    t.diagnostic(`20% loss, counters: ${JSON.stringify(delta(twenty))}`);
    t.diagnostic(`relay: ${relay.link.dropped} datagrams dropped, ${relay.link.passed} passed`);
  } finally {
    await inside?.close();
    relay?.close();
    await lossy?.stop();
    net.remove();
  }
});
