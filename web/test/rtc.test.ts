import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  RoomConnection,
  backoffMs,
  qualityFor,
  rateConnection,
  readStats,
  rtcUrl,
  sourceFor,
  worseOf,
  type RoomListener,
} from '../src/rtc';

describe('qualityFor', () => {
  it('sends no video to hidden tiles and more to bigger ones', () => {
    expect(qualityFor(false, 1000)).toBe('off');
    expect(qualityFor(true, 160)).toBe('low');
    expect(qualityFor(true, 320)).toBe('medium');
    expect(qualityFor(true, 1280)).toBe('high');
  });
});

describe('rtcUrl', () => {
  it('follows the page scheme', () => {
    expect(rtcUrl('r1', { protocol: 'https:', host: 'x.example' } as Location)).toBe('wss://x.example/rtc/r1');
    expect(rtcUrl('a b', { protocol: 'http:', host: '127.0.0.1:8080' } as Location)).toBe(
      'ws://127.0.0.1:8080/rtc/a%20b',
    );
  });
});

describe('backoffMs', () => {
  it('retries quickly at first, then every three seconds at most', () => {
    expect(backoffMs(0)).toBe(250);
    expect(backoffMs(1)).toBe(500);
    expect(backoffMs(3)).toBe(2000);
    expect(backoffMs(10)).toBe(3000);
  });
});

describe('rateConnection', () => {
  it('rates loss and round-trip time as a caller would feel them', () => {
    expect(rateConnection(0, 0.01)).toBe('good');
    expect(rateConnection(0, undefined)).toBe('good');
    expect(rateConnection(0.03, 0.05)).toBe('fair');
    expect(rateConnection(0, 0.4)).toBe('fair');
    expect(rateConnection(0.1, 0.05)).toBe('poor');
    expect(rateConnection(0, 0.8)).toBe('poor');
  });
});

describe('worseOf', () => {
  it('shows the worse of what the browser measures and what the server reports', () => {
    expect(worseOf('good', null)).toBe('good');
    expect(worseOf('good', 'poor')).toBe('poor');
    expect(worseOf('fair', 'good')).toBe('fair');
    expect(worseOf('lost', 'fair')).toBe('lost');
  });
});

describe('readStats', () => {
  it('sums inbound counters and takes the nominated pair round-trip time', () => {
    const entries = [
      { type: 'inbound-rtp', packetsReceived: 90, packetsLost: 10 },
      { type: 'inbound-rtp', packetsReceived: 10, packetsLost: -2 },
      { type: 'remote-inbound-rtp', fractionLost: 0.04 },
      { type: 'candidate-pair', nominated: false, currentRoundTripTime: 9 },
      { type: 'candidate-pair', nominated: true, currentRoundTripTime: 0.02 },
    ];
    const report = { forEach: (f: (s: unknown) => void) => entries.forEach(f) } as unknown as RTCStatsReport;
    expect(readStats(report)).toEqual({ counters: { received: 100, lost: 10 }, rtt: 0.02, remoteLoss: 0.04 });
  });
});

describe('sourceFor', () => {
  it('publishes a person as camera and microphone, a phone only as the secondary camera', () => {
    expect(sourceFor('video', 'person')).toBe('camera');
    expect(sourceFor('audio', 'person')).toBe('microphone');
    expect(sourceFor('video', 'phone')).toBe('secondary_camera');
    expect(sourceFor('audio', 'phone')).toBeNull();
  });
});

/** A signaling socket on which the test plays the server. */
class FakeSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 3;
  static all: FakeSocket[] = [];
  readyState = FakeSocket.CONNECTING;
  sent: { type: string; [field: string]: unknown }[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;

  constructor() {
    FakeSocket.all.push(this);
  }

  send(data: string) {
    this.sent.push(JSON.parse(data));
  }

  close() {
    this.drop();
  }

  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }

  receive(message: object) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  /** The connection is gone, as a network change would leave it. */
  drop() {
    if (this.readyState === FakeSocket.CLOSED) return;
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.();
  }

  types() {
    return this.sent.map((m) => m.type);
  }
}

/** Just enough of a peer connection for the negotiation: offers say whether they restart ICE. */
class FakePeerConnection {
  static all: FakePeerConnection[] = [];
  iceConnectionState = 'new';
  connectionState = 'new';
  localDescription: RTCSessionDescriptionInit | null = null;
  answers: string[] = [];
  configuration: RTCConfiguration = {};
  private offers = 0;
  private transceivers: { mid: string | null; direction: string; currentDirection: string | null; sender: object }[] = [];
  private listeners = new Map<string, (() => void)[]>();

  constructor(configuration: RTCConfiguration = {}) {
    this.configuration = configuration;
    FakePeerConnection.all.push(this);
  }

  getConfiguration() {
    return this.configuration;
  }

  setConfiguration(configuration: RTCConfiguration) {
    this.configuration = configuration;
  }

  addTransceiver(track: unknown, init: { direction: string }) {
    const transceiver = { mid: null, direction: init.direction, currentDirection: null, sender: { track } };
    this.transceivers.push(transceiver);
    return transceiver;
  }

  async createOffer(options: { iceRestart?: boolean }) {
    this.offers += 1;
    return { type: 'offer' as const, sdp: `offer ${this.offers}${options.iceRestart ? ' ice-restart' : ''}` };
  }

  async setLocalDescription(description: RTCSessionDescriptionInit) {
    this.transceivers.forEach((t, i) => (t.mid ??= String(i)));
    this.localDescription = description;
  }

  async setRemoteDescription(description: RTCSessionDescriptionInit) {
    this.answers.push(description.sdp ?? '');
  }

  addEventListener(name: string, listener: () => void) {
    this.listeners.set(name, [...(this.listeners.get(name) ?? []), listener]);
  }

  /** ICE gives up on the current path. */
  fail() {
    this.iceConnectionState = 'failed';
    for (const listener of this.listeners.get('iceconnectionstatechange') ?? []) listener();
  }

  async createAnswer() {
    return { type: 'answer' as const, sdp: 'answer' };
  }

  closed = false;

  close() {
    this.closed = true;
  }
}

describe('RoomConnection negotiation', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    FakeSocket.all = [];
    FakePeerConnection.all = [];
  });

  /** A connection whose first socket is open and joined; errors and closings it reports are collected. */
  function joinedRoom() {
    vi.stubGlobal('WebSocket', FakeSocket);
    vi.stubGlobal('RTCPeerConnection', FakePeerConnection);
    const errors: string[] = [];
    const closings: string[] = [];
    const listener = new Proxy({} as RoomListener, {
      get: (_, name) =>
        name === 'error'
          ? (code: string) => errors.push(code)
          : name === 'closed'
            ? (reason: string) => closings.push(reason)
            : () => {},
    });
    const tracks = [{ kind: 'video', stop() {} }, { kind: 'audio', stop() {} }];
    const local = { getTracks: () => tracks } as unknown as MediaStream;
    const room = new RoomConnection({ room: 'r1', token: 'first' }, async () => ({ room: 'r1', token: 'again' }), local, listener);
    const [publisher] = FakePeerConnection.all;
    const socket = FakeSocket.all[0];
    socket.open();
    socket.receive({ type: 'joined', resume_token: 'resume', you: { identity: 'p1' }, participants: [], tracks: [] });
    return { room, publisher, socket, errors, closings };
  }

  const joined = { type: 'joined', resume_token: 'resume-2', you: { identity: 'p1' }, participants: [], tracks: [] };

  it('re-offers with new ICE credentials after a resume, though the drop cut an offer short', async () => {
    const { room, publisher, socket } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    // The socket drops before the answer comes: it never will.
    socket.drop();
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(2));
    const resumed = FakeSocket.all[1];
    resumed.open();
    expect(resumed.sent[0]).toMatchObject({ type: 'join', token: 'again', resume_token: 'resume' });
    resumed.receive(joined);
    await vi.waitFor(() => expect(resumed.types()).toEqual(['join', 'restart_ice', 'publish_offer']));
    expect(resumed.sent[2].sdp).toMatch(/ice-restart/);
    expect(resumed.sent[2].tracks).toEqual([
      { mid: '0', source: 'camera' },
      { mid: '1', source: 'microphone' },
    ]);
    resumed.receive({ type: 'publish_answer', sdp: 'answer' });
    await vi.waitFor(() => expect(publisher.answers).toEqual(['answer']));
    room.leave();
  });

  it('joins afresh with new media connections when the server no longer knows the room', async () => {
    const { room, publisher, socket, closings } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    socket.receive({ type: 'publish_answer', sdp: 'answer' });
    // The server restarts: the socket drops, and the resume is refused.
    socket.drop();
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(2));
    const refused = FakeSocket.all[1];
    refused.open();
    expect(refused.sent[0]).toMatchObject({ type: 'join', resume_token: 'resume' });
    refused.receive({ type: 'error', code: 'resume_refused', message: 'unknown resume token' });
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(3));
    const fresh = FakeSocket.all[2];
    fresh.open();
    expect(fresh.sent[0]).toEqual({ type: 'join', version: 1, token: 'again' });
    fresh.receive({ ...joined, resume_token: 'resume-3' });
    // New connections publish what the old ones did; no ICE restart of the old ones.
    await vi.waitFor(() => expect(FakePeerConnection.all).toHaveLength(4));
    expect(publisher.closed).toBe(true);
    await vi.waitFor(() => expect(fresh.types()).toEqual(['join', 'publish_offer']));
    expect(fresh.sent[1].tracks).toEqual([
      { mid: '0', source: 'camera' },
      { mid: '1', source: 'microphone' },
    ]);
    expect(closings).toEqual([]);
    // A later drop resumes with the new token.
    fresh.drop();
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(4));
    FakeSocket.all[3].open();
    expect(FakeSocket.all[3].sent[0]).toMatchObject({ type: 'join', resume_token: 'resume-3' });
    room.leave();
  });

  it('ends the session, without joining afresh, when its room was closed while it was away', async () => {
    const { socket, closings } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    socket.drop();
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(2));
    const told = FakeSocket.all[1];
    told.open();
    expect(told.sent[0]).toMatchObject({ type: 'join', resume_token: 'resume' });
    told.receive({ type: 'error', code: 'room_closed', message: 'an administrator closed this room' });
    await vi.waitFor(() => expect(closings).toEqual(['room_closed']));
    // No third socket: the page does not join again on its own.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(FakeSocket.all).toHaveLength(2);
  });

  it('gathers with the TURN servers of the latest joined or ice_servers on both connections', async () => {
    const { room, publisher, socket } = joinedRoom();
    const subscriber = FakePeerConnection.all[1];
    expect(publisher.configuration.iceServers).toEqual([]);
    const turn = { urls: ['turn:turn.example.com:3478?transport=udp'], username: '1700000000:p1', credential: 'c' };
    socket.drop();
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(2));
    const resumed = FakeSocket.all[1];
    resumed.open();
    resumed.receive({ ...joined, ice_servers: [turn] });
    expect(publisher.configuration.iceServers).toEqual([turn]);
    expect(subscriber.configuration.iceServers).toEqual([turn]);
    // Before those expire the server sends fresh ones.
    const fresh = { ...turn, username: '1700001800:p1', credential: 'd' };
    resumed.receive({ type: 'ice_servers', ice_servers: [fresh] });
    await vi.waitFor(() => expect(subscriber.configuration.iceServers).toEqual([fresh]));
    expect(publisher.configuration.iceServers).toEqual([fresh]);
    room.leave();
  });

  it('restarts on a resume even right after an ICE failure restarted', async () => {
    const { room, publisher, socket } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    socket.receive({ type: 'publish_answer', sdp: 'answer' });
    // The network changes: ICE fails, and the restart's offer goes into a socket about to drop.
    publisher.fail();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer', 'restart_ice', 'publish_offer']));
    socket.drop();
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(2));
    const resumed = FakeSocket.all[1];
    resumed.open();
    resumed.receive(joined);
    await vi.waitFor(() => expect(resumed.types()).toEqual(['join', 'restart_ice', 'publish_offer']));
    room.leave();
  });

  it('replaces only the subscriber connection when the server renews it, and says its qualities again', async () => {
    const { room, publisher, socket } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    socket.receive({ type: 'publish_answer', sdp: 'answer' });
    room.tileShown('t7', true, 160);
    const subscriber = FakePeerConnection.all[1];
    socket.receive({ type: 'subscriber_reset' });
    await vi.waitFor(() => expect(FakePeerConnection.all).toHaveLength(3));
    expect(subscriber.closed).toBe(true);
    expect(publisher.closed).toBe(false);
    const qualities = socket.sent.filter((m) => m.type === 'set_quality');
    expect(qualities).toEqual([
      { type: 'set_quality', track: 't7', quality: 'low' },
      { type: 'set_quality', track: 't7', quality: 'low' },
    ]);
    // The next offer goes to the new connection.
    socket.receive({ type: 'subscriber_offer', sdp: 'offer for the new one' });
    const renewed = FakePeerConnection.all[2];
    await vi.waitFor(() => expect(renewed.answers).toEqual(['offer for the new one']));
    await vi.waitFor(() => expect(socket.types()).toContain('subscriber_answer'));
    expect(subscriber.answers).toEqual([]);
    room.leave();
  });

  it('says, after a resume, the qualities its tiles chose while the socket was down', async () => {
    const { room, socket } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    socket.receive({ type: 'publish_answer', sdp: 'answer' });
    room.tileShown('t7', true, 160);
    room.tileShown('t8', true, 160);
    room.tileShown('t9', true, 160);
    socket.drop();
    await vi.waitFor(() => expect(FakeSocket.all).toHaveLength(2));
    // While the socket is down, one tile comes into full view and another is hidden.
    room.tileShown('t7', true, 1280);
    room.tileShown('t8', false, 160);
    const resumed = FakeSocket.all[1];
    resumed.open();
    // t9 was unpublished meanwhile: the snapshot no longer has it.
    resumed.receive({
      ...joined,
      tracks: ['t7', 't8'].map((id) => ({ id, participant: 'p2', source: 'camera', muted: false })),
    });
    await vi.waitFor(() => expect(resumed.types()).toContain('set_quality'));
    expect(resumed.sent.filter((m) => m.type === 'set_quality')).toEqual([
      { type: 'set_quality', track: 't7', quality: 'high' },
      { type: 'set_quality', track: 't8', quality: 'off' },
    ]);
    room.leave();
  });

  it('does not ask a renewed subscriber connection for a track that was unpublished', async () => {
    const { room, socket } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    socket.receive({ type: 'publish_answer', sdp: 'answer' });
    room.tileShown('t7', true, 160);
    room.tileShown('t8', true, 160);
    socket.receive({ type: 'track_unpublished', track: 't8' });
    socket.receive({ type: 'subscriber_reset' });
    await vi.waitFor(() => expect(FakePeerConnection.all).toHaveLength(3));
    expect(socket.sent.filter((m) => m.type === 'set_quality').map((m) => m.track)).toEqual(['t7', 't8', 't7']);
    room.leave();
  });

  it('goes on negotiating after the server refuses an offer', async () => {
    const { room, publisher, socket, errors } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    socket.receive({ type: 'error', code: 'offer_refused', message: 'no', offer_refused: true });
    expect(errors).toEqual(['offer_refused']);
    publisher.fail();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer', 'restart_ice', 'publish_offer']));
    socket.receive({ type: 'publish_answer', sdp: 'answer' });
    await vi.waitFor(() => expect(publisher.answers).toEqual(['answer']));
    room.leave();
  });

  it('says leave when the page goes away, and only once', async () => {
    const { socket } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    window.dispatchEvent(new Event('pagehide'));
    expect(socket.types()).toEqual(['join', 'publish_offer', 'leave']);
    expect(socket.readyState).toBe(FakeSocket.CLOSED);
    // A second pagehide (a page restored and hidden again) finds nothing left to leave.
    window.dispatchEvent(new Event('pagehide'));
    expect(FakeSocket.all).toHaveLength(1);
    expect(socket.types()).toEqual(['join', 'publish_offer', 'leave']);
  });

  it('a page kept in the back/forward cache leaves and shows it is no longer connected', async () => {
    const { socket, closings } = joinedRoom();
    await vi.waitFor(() => expect(socket.types()).toEqual(['join', 'publish_offer']));
    window.dispatchEvent(Object.assign(new Event('pagehide'), { persisted: true }));
    expect(socket.types()).toEqual(['join', 'publish_offer', 'leave']);
    expect(closings).toEqual(['page_hidden']);
  });
});
