// The browser side of a room: the signaling socket and the two peer connections (publisher:
// our camera, microphone and screen; subscriber: everyone else), as the server expects them.
//
// A dropped socket is not the end of a call: the peer connections keep carrying media while the
// socket reconnects and resumes within the server's 30 s window, with a fresh join token. If the
// server lost the media connections meanwhile, it says `media_reset` and we start them afresh.
// Our ICE candidates trickle to the server as they are found; the server's are in its SDP.
//
// Publisher offers go one at a time, each waiting for its answer. An answer that cannot come
// any more (the socket the offer went out on closed, the server refused the offer, the media
// connections were replaced) ends the wait, so the queue never stalls: after a resume our
// re-offer carries whatever the cut-short negotiation was about.

import type { LiveEvent, ProctoringHint, ProctoringNotice } from './proctoring';

export type Source = 'camera' | 'microphone' | 'screen_share' | 'secondary_camera';

export interface ParticipantInfo {
  identity: string;
  name: string;
  role: string;
  reconnecting: boolean;
  /** Set for a candidate's paired phone: the candidate's identity. */
  phone_of?: string;
  /** Their connection as the server sees it, once it has reports. */
  connection?: LinkQuality;
}

/** A connection's quality as the server rates it from RTCP (loss both ways, round trip). */
export type LinkQuality = 'good' | 'fair' | 'poor';

/** The limits the server enforces, stated once on the server and sent in `joined`. */
export interface Limits {
  max_message_bytes: number;
  /** In UTF-16 code units, as `maxLength` and `String.length` count. */
  max_chat_chars: number;
}

export interface TrackInfo {
  id: string;
  participant: string;
  source: Source;
  muted: boolean;
  /** Its media stopped reaching the server. */
  stalled?: boolean;
  /** Set (to its codec, or true) when this browser cannot decode it. */
  unplayable?: string | true;
}

/** Whether the room is being recorded, and who still has to consent. */
export interface RecordingNotice {
  state: 'off' | 'waiting_for_consent' | 'on';
  needs_consent: string[];
  retention_days: number;
}

export interface ChatLine {
  from: string;
  name: string;
  text: string;
  at: number;
}

/** How well media flows, from the browser's own statistics. */
export type ConnectionQuality = 'good' | 'fair' | 'poor' | 'lost';

export interface RoomListener {
  joined(you: ParticipantInfo, participants: ParticipantInfo[], tracks: TrackInfo[]): void;
  participantJoined(p: ParticipantInfo): void;
  participantLeft(identity: string): void;
  participantReconnecting(identity: string, reconnecting: boolean): void;
  /** Someone's connection got better or worse, as the server sees it. */
  participantConnection(identity: string, quality: LinkQuality): void;
  trackPublished(t: TrackInfo): void;
  trackUnpublished(id: string): void;
  trackMuted(id: string, muted: boolean): void;
  /** A track's media stopped reaching the server, or flows again. */
  trackStalled(id: string, stalled: boolean): void;
  /** Our subscriber connection cannot decode this track (its codec, when known): none of it
   * will arrive, so its tile says so instead of staying black. */
  trackUnplayable(id: string, codec: string | null): void;
  /** The limits the server enforces (sent when joining). */
  limits(limits: Limits): void;
  /** The room's recording status (also on joining). */
  recording(notice: RecordingNotice): void;
  /** Whether the room is proctored (also on joining). */
  proctoring(notice: ProctoringNotice): void;
  /** A proctoring event opened or closed (interviewers and reviewers only). */
  proctoringEvent(event: LiveEvent): void;
  /** A prompt about our own setup (candidates). */
  proctoringHint(hint: ProctoringHint): void;
  remoteTrack(trackId: string, track: MediaStreamTrack): void;
  chat(line: ChatLine): void;
  activeSpeakers(identities: string[]): void;
  /** Our own signaling connection dropped (true) or came back (false). */
  reconnecting(active: boolean): void;
  connectionQuality(quality: ConnectionQuality): void;
  /** Our screen share ended (we stopped it, or the browser's own "Stop sharing" did). */
  screenShareEnded(): void;
  /** An interviewer muted one of our tracks; it stays off until we turn it on again. */
  mutedByModerator(source: Source): void;
  error(code: string, message: string): void;
  closed(reason: string): void;
}

/** A room and a join token for it, from `POST /api/interviews/{id}/join`. */
export interface JoinGrant {
  room: string;
  token: string;
}

/** How long the server keeps a dropped participant's place. */
export const RESUME_WINDOW_MS = 30_000;
const QUALITY_INTERVAL_MS = 2_000;
const ICE_RESTART_SPACING_MS = 5_000;

/** Simulcast: three layers of the camera, as the SFU selects among q/h/f. */
export const SIMULCAST: RTCRtpEncodingParameters[] = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', maxBitrate: 1_500_000 },
];

export type Quality = 'off' | 'low' | 'medium' | 'high';

/** The layer a tile needs: none when hidden, then by its width on screen. */
export function qualityFor(visible: boolean, width: number): Quality {
  if (!visible) return 'off';
  if (width < 240) return 'low';
  if (width < 560) return 'medium';
  return 'high';
}

/** What a local track is published as: a phone sends only its camera, as the secondary camera. */
export function sourceFor(kind: string, device: 'person' | 'phone'): Source | null {
  if (device === 'phone') return kind === 'video' ? 'secondary_camera' : null;
  return kind === 'video' ? 'camera' : 'microphone';
}

/**
 * Marks a stage of joining or negotiating in the page's performance timeline as
 * `sightline:<stage>`, where the browser's developer tools and our end-to-end tests read where
 * the time to the first picture goes.
 */
export function markStage(stage: string) {
  performance.mark(`sightline:${stage}`);
}

export function rtcUrl(room: string, location: Location = window.location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/rtc/${encodeURIComponent(room)}`;
}

/** Delay before reconnect attempt `n` (0-based): quick at first, then every few seconds. */
export function backoffMs(attempt: number): number {
  return Math.min(3000, 250 * 2 ** attempt);
}

/**
 * Rates a connection from packet loss (a fraction) and round-trip time (seconds), with the
 * thresholds calls feel: a few percent loss or a few hundred milliseconds is noticeable.
 */
export function rateConnection(loss: number, rttSeconds: number | undefined): ConnectionQuality {
  const rtt = rttSeconds ?? 0;
  if (loss < 0.02 && rtt < 0.3) return 'good';
  if (loss < 0.08 && rtt < 0.6) return 'fair';
  return 'poor';
}

const QUALITY_ORDER: ConnectionQuality[] = ['good', 'fair', 'poor', 'lost'];

/** The worse of what this browser measures and what the server reports of the same link. */
export function worseOf(local: ConnectionQuality, server: LinkQuality | null): ConnectionQuality {
  if (server === null) return local;
  return QUALITY_ORDER.indexOf(server) > QUALITY_ORDER.indexOf(local) ? server : local;
}

/** Packet counters summed over a connection's RTP streams, to compute loss between samples. */
interface Counters {
  received: number;
  lost: number;
}

/** Reads loss counters and the round-trip time from one connection's statistics report. */
export function readStats(report: RTCStatsReport): { counters: Counters; rtt?: number; remoteLoss: number } {
  const counters = { received: 0, lost: 0 };
  let rtt: number | undefined;
  let remoteLoss = 0;
  report.forEach((s) => {
    if (s.type === 'inbound-rtp') {
      counters.received += s.packetsReceived ?? 0;
      counters.lost += Math.max(0, s.packetsLost ?? 0);
    } else if (s.type === 'remote-inbound-rtp') {
      remoteLoss = Math.max(remoteLoss, s.fractionLost ?? 0);
    } else if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) {
      rtt = s.currentRoundTripTime;
    }
  });
  return { counters, rtt, remoteLoss };
}

export class RoomConnection {
  private socket!: WebSocket;
  private publisher!: RTCPeerConnection;
  private subscriber!: RTCPeerConnection;
  /** What each of our publisher m-lines carries, declared with every offer. */
  private sources = new Map<RTCRtpTransceiver, Source>();
  /** Our own tracks' server ids by source, for mute messages. */
  private myTracks = new Map<Source, string>();
  private identity = '';
  private qualities = new Map<string, Quality>();
  private resumeToken: string | null = null;
  private published = false;
  private leaving = false;
  private droppedAt: number | null = null;
  /**
   * The server refused our resume (it restarted, or the room now runs elsewhere): the next join
   * goes without the resume token, and its answer gets new media connections.
   */
  private joinAfresh = false;
  private attempt = 0;
  /** Publisher offers go one at a time: each waits for the previous answer. */
  private negotiation: Promise<void> = Promise.resolve();
  /** Ends the wait of the offer on the wire: with its answer, or `null` when none will come. */
  private answerWaiter: ((sdp: string | null) => void) | null = null;
  private screen: RTCRtpTransceiver | null = null;
  private lastRestart = 0;
  private lastCounters: Counters = { received: 0, lost: 0 };
  /** Our connection as the server last rated it. */
  private serverQuality: LinkQuality | null = null;
  /** TURN servers with credentials issued for this connection (`joined`, `media_reset`). */
  private iceServers: RTCIceServer[] = [];
  private qualityTimer: ReturnType<typeof setInterval>;

  constructor(
    private grant: JoinGrant,
    /** A fresh grant for reconnecting (join tokens live only minutes). */
    private readonly renewGrant: () => Promise<JoinGrant>,
    private readonly local: MediaStream,
    private readonly listener: RoomListener,
    /** `phone`: a paired phone, publishing its one video as the secondary camera. */
    private readonly device: 'person' | 'phone' = 'person',
  ) {
    this.createConnections();
    this.qualityTimer = setInterval(() => void this.sampleQuality(), QUALITY_INTERVAL_MS);
    // A closed tab or a page navigated away is a leave, said at once: otherwise the others see
    // "reconnecting" for the whole resume window, which only a network drop should get.
    window.addEventListener('pagehide', this.leaveOnPageHide);
    this.open();
  }

  private readonly leaveOnPageHide = (event: PageTransitionEvent) => {
    this.leave();
    // Kept in the back/forward cache: shown again, the page must not look connected.
    if (event.persisted) this.listener.closed('page_hidden');
  };

  /** New publisher and subscriber connections; candidates trickle to the server as found. */
  private createConnections() {
    this.publisher = this.createConnection('publisher');
    this.createSubscriber();
  }

  private createSubscriber() {
    this.subscriber = this.createConnection('subscriber');
    this.subscriber.ontrack = (event) => {
      markStage('remote_track');
      this.listener.remoteTrack(event.track.id, event.track);
    };
  }

  private createConnection(connection: 'publisher' | 'subscriber'): RTCPeerConnection {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    pc.addEventListener('iceconnectionstatechange', () => {
      markStage(`${connection}_ice_${pc.iceConnectionState}`);
      if (pc.iceConnectionState === 'failed') this.restartIce();
    });
    pc.addEventListener('connectionstatechange', () => markStage(`${connection}_${pc.connectionState}`));
    pc.addEventListener('icecandidate', (event) => {
      if (event.candidate?.candidate) {
        this.send({ type: 'ice_candidate', connection, candidate: event.candidate.candidate });
      }
    });
    return pc;
  }

  /**
   * The server replaced our subscriber connection (the old one kept too many m-lines of tracks
   * that are gone): a new one takes the next offer and every track again, and the server hears
   * our tile qualities again. Publishing carries on untouched.
   */
  private renewSubscriber() {
    this.subscriber.close();
    this.lastCounters = { received: 0, lost: 0 };
    this.createSubscriber();
    for (const [track, quality] of this.qualities) this.send({ type: 'set_quality', track, quality });
  }

  /**
   * Takes the TURN servers of a `joined` or `media_reset`. Connections made before (the first
   * ones are made before the join answer) gather with them from their next offer or ICE restart.
   */
  private useIceServers(servers: RTCIceServer[] | undefined) {
    this.iceServers = servers ?? [];
    for (const pc of [this.publisher, this.subscriber]) {
      if (pc.signalingState === 'closed') continue;
      try {
        pc.setConfiguration({ ...pc.getConfiguration(), iceServers: this.iceServers });
      } catch (err) {
        console.warn('TURN servers not applied', err);
      }
    }
  }

  /**
   * The server lost our media connections (our network was gone longer than ICE allows): start
   * them afresh, publishing what we published before, while the room carries on.
   */
  private async resetMedia() {
    this.publisher.close();
    this.subscriber.close();
    const screen = this.screen?.sender.track ?? null;
    this.sources.clear();
    this.myTracks.clear();
    this.qualities.clear();
    this.screen = null;
    // An answer for the old publisher will not come; the new one negotiates afresh.
    this.settleAnswer(null);
    this.negotiation = Promise.resolve();
    this.createConnections();
    if (screen && screen.readyState === 'live') {
      const transceiver = this.publisher.addTransceiver(screen, { direction: 'sendonly' });
      this.sources.set(transceiver, 'screen_share');
      this.screen = transceiver;
    }
    await this.publish();
  }

  private open() {
    const socket = new WebSocket(rtcUrl(this.grant.room));
    this.socket = socket;
    socket.onopen = () => {
      markStage('socket_open');
      this.send({
        type: 'join',
        version: 1,
        token: this.grant.token,
        ...(this.droppedAt !== null && this.resumeToken && !this.joinAfresh
          ? { resume_token: this.resumeToken }
          : {}),
      });
    };
    socket.onmessage = (event) => void this.onMessage(JSON.parse(String(event.data)));
    socket.onclose = () => {
      if (socket === this.socket) this.onSocketClosed();
    };
  }

  private onSocketClosed() {
    // No answer comes on a closed socket: the offer is made again after the resume.
    this.settleAnswer(null);
    if (this.leaving) return;
    if (this.resumeToken === null) {
      this.finish('disconnected');
      return;
    }
    if (this.droppedAt === null) {
      this.droppedAt = Date.now();
      this.attempt = 0;
      this.listener.reconnecting(true);
    }
    const elapsed = Date.now() - this.droppedAt;
    if (elapsed >= RESUME_WINDOW_MS) {
      this.finish('timed_out');
      return;
    }
    const delay = Math.min(backoffMs(this.attempt), RESUME_WINDOW_MS - elapsed);
    this.attempt += 1;
    setTimeout(() => void this.reconnect(), delay);
  }

  private async reconnect() {
    if (this.leaving) return;
    try {
      this.grant = await this.renewGrant();
    } catch {
      // The API is unreachable too: try again on the same schedule.
      this.onSocketClosed();
      return;
    }
    this.open();
  }

  private finish(reason: string) {
    if (this.leaving) return;
    this.leaving = true;
    clearInterval(this.qualityTimer);
    window.removeEventListener('pagehide', this.leaveOnPageHide);
    this.listener.closed(reason);
  }

  /** Sends a message if the socket is open; returns whether it went. */
  private send(message: object): boolean {
    if (this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** Ends the wait for a publisher answer, if an offer is waiting: see `answerWaiter`. */
  private settleAnswer(sdp: string | null) {
    const waiter = this.answerWaiter;
    this.answerWaiter = null;
    waiter?.(sdp);
  }

  /**
   * Sends a publisher offer for the current transceivers and waits for its answer. Resolves
   * once answered, or once no answer can come (see `settleAnswer`): a later offer, such as the
   * re-offer after a resume, then carries what this one would have.
   */
  private renegotiate(iceRestart = false): Promise<void> {
    // Media connections replaced meanwhile (`resetMedia`) are negotiated by their own offers.
    const pc = this.publisher;
    const step = this.negotiation.then(async () => {
      if (pc !== this.publisher) return;
      const offer = await pc.createOffer({ iceRestart });
      await pc.setLocalDescription(offer);
      if (pc !== this.publisher) return;
      const tracks: { mid: string; source: Source }[] = [];
      for (const [transceiver, source] of this.sources) {
        if (transceiver.mid && transceiver.currentDirection !== 'stopped' && transceiver.direction !== 'stopped') {
          tracks.push({ mid: transceiver.mid, source });
        }
      }
      const answered = new Promise<string | null>((resolve) => {
        this.answerWaiter = resolve;
      });
      // Not connected: the resume's re-offer will carry this one.
      if (!this.send({ type: 'publish_offer', sdp: pc.localDescription?.sdp ?? '', tracks })) this.settleAnswer(null);
      markStage('publish_offer');
      const sdp = await answered;
      if (sdp === null || pc !== this.publisher) return;
      markStage('publish_answer');
      await pc.setRemoteDescription({ type: 'answer', sdp });
    });
    // A failed negotiation is reported, and the next one still runs.
    this.negotiation = step.catch((err) => {
      if (pc === this.publisher) this.listener.error('negotiation_failed', String(err));
    });
    return step;
  }

  /**
   * Restarts ICE on both connections (new credentials, new candidate checks), so media follows
   * a changed network path: our re-offer for the publisher, the server's offer for the
   * subscriber. At most one restart every few seconds when ICE fails; a resume always restarts,
   * as its re-offer also stands in for any offer the drop cut short. While the socket is down
   * there is no one to tell: the resume restarts.
   */
  private restartIce(resumed = false) {
    if (this.leaving || !this.published || this.droppedAt !== null) return;
    if (!resumed && Date.now() - this.lastRestart < ICE_RESTART_SPACING_MS) return;
    this.lastRestart = Date.now();
    this.send({ type: 'restart_ice' });
    void this.renegotiate(true);
  }

  private async publish() {
    for (const track of this.local.getTracks()) {
      const source = sourceFor(track.kind, this.device);
      if (!source) continue;
      const transceiver = this.publisher.addTransceiver(track, {
        direction: 'sendonly',
        streams: [this.local],
        ...(track.kind === 'video' ? { sendEncodings: SIMULCAST } : {}),
      });
      this.sources.set(transceiver, source);
    }
    await this.renegotiate();
  }

  private async onMessage(message: any) {
    switch (message.type) {
      case 'joined':
        markStage('joined');
        this.resumeToken = message.resume_token;
        this.identity = message.you.identity;
        // Changes while our socket was down were not sent: the snapshot has the latest.
        this.serverQuality = message.you.connection ?? null;
        this.useIceServers(message.ice_servers);
        for (const t of message.tracks as TrackInfo[]) {
          if (t.participant === this.identity) this.myTracks.set(t.source, t.id);
        }
        this.listener.joined(message.you, message.participants, message.tracks);
        if (message.limits) this.listener.limits(message.limits);
        if (message.recording) this.listener.recording(message.recording);
        if (message.proctoring) this.listener.proctoring(message.proctoring);
        if (this.joinAfresh) {
          // A room that forgot us: everything is new, our media connections too.
          this.joinAfresh = false;
          this.droppedAt = null;
          this.listener.reconnecting(false);
          if (this.published) await this.resetMedia();
        } else if (this.droppedAt !== null) {
          this.droppedAt = null;
          this.listener.reconnecting(false);
          // Whatever dropped the socket may have moved us to another network: find a new path.
          this.restartIce(true);
          // A tile that was shown, hidden or resized while the socket was down could not say so:
          // say every tile's quality again, for the tracks the room still has.
          const live = new Set((message.tracks as TrackInfo[]).map((t) => t.id));
          for (const [track, quality] of this.qualities) {
            if (live.has(track)) this.send({ type: 'set_quality', track, quality });
            else this.qualities.delete(track);
          }
        }
        if (!this.published) {
          this.published = true;
          await this.publish();
        }
        break;
      case 'publish_answer':
        this.settleAnswer(message.sdp);
        break;
      case 'subscriber_offer':
        markStage('subscriber_offer');
        await this.subscriber.setRemoteDescription({ type: 'offer', sdp: message.sdp });
        await this.subscriber.setLocalDescription(await this.subscriber.createAnswer());
        this.send({ type: 'subscriber_answer', sdp: this.subscriber.localDescription?.sdp ?? '' });
        markStage('subscriber_answer');
        break;
      case 'participant_joined':
        this.listener.participantJoined(message.participant);
        break;
      case 'participant_left':
        this.listener.participantLeft(message.participant);
        break;
      case 'participant_reconnecting':
        this.listener.participantReconnecting(message.participant, true);
        break;
      case 'connection_quality':
        // Ours counts in our own badge: what the server sees of our uplink and downlink.
        if (message.participant === this.identity) this.serverQuality = message.quality;
        this.listener.participantConnection(message.participant, message.quality);
        break;
      case 'participant_resumed':
        this.listener.participantReconnecting(message.participant, false);
        break;
      case 'track_published':
        if (message.track.participant === this.identity) this.myTracks.set(message.track.source, message.track.id);
        this.listener.trackPublished(message.track);
        break;
      case 'track_unpublished':
        // A renewed subscriber connection must not ask for a track that is gone.
        this.qualities.delete(message.track);
        this.listener.trackUnpublished(message.track);
        break;
      case 'track_muted': {
        const mine = [...this.myTracks].find(([, id]) => id === message.track)?.[0];
        if (mine && message.muted && message.by) {
          // Enforced by the server already; turning the track off here keeps our UI honest.
          const kind = mine === 'microphone' ? 'audio' : 'video';
          for (const track of this.local.getTracks()) {
            if (track.kind === kind && mine !== 'screen_share') track.enabled = false;
          }
          this.listener.mutedByModerator(mine);
        }
        this.listener.trackMuted(message.track, message.muted);
        break;
      }
      case 'recording':
        this.listener.recording(message.recording);
        break;
      case 'proctoring':
        this.listener.proctoring(message.proctoring);
        break;
      case 'proctoring_event':
        this.listener.proctoringEvent(message.event);
        break;
      case 'proctoring_hint':
        this.listener.proctoringHint(message.hint);
        break;
      case 'track_stalled':
        this.listener.trackStalled(message.track, message.stalled);
        break;
      case 'track_unplayable':
        this.listener.trackUnplayable(message.track, message.codec ?? null);
        break;
      case 'media_reset':
        this.iceServers = message.ice_servers ?? [];
        this.serverQuality = null;
        await this.resetMedia();
        break;
      case 'ice_servers':
        this.useIceServers(message.ice_servers);
        break;
      case 'subscriber_reset':
        this.renewSubscriber();
        break;
      case 'chat':
        this.listener.chat(message);
        break;
      case 'active_speakers':
        this.listener.activeSpeakers(message.participants);
        break;
      case 'error':
        if (message.code === 'resume_refused') {
          // The room no longer knows us (its server restarted, or it runs on another node now):
          // while the resume window lasts, join it afresh instead of leaving the page.
          if (!this.joinAfresh && this.droppedAt !== null && Date.now() - this.droppedAt < RESUME_WINDOW_MS) {
            this.joinAfresh = true;
            this.socket.close();
            break;
          }
          this.finish('timed_out');
          this.socket.close();
          break;
        }
        // Refusals of the join itself: trying again would be refused the same way.
        // `room_closed`: an administrator closed the room while this connection was down.
        if (message.code === 'removed' || message.code === 'session_ended' || message.code === 'room_closed') {
          this.finish(message.code);
          this.socket.close();
          break;
        }
        // A refused offer gets no answer; the next negotiation may go.
        if (message.offer_refused === true) this.settleAnswer(null);
        this.listener.error(message.code, message.message);
        break;
      case 'removed':
        this.finish(message.reason);
        break;
    }
  }

  setMuted(kind: 'audio' | 'video', muted: boolean) {
    for (const track of this.local.getTracks()) {
      if (track.kind === kind) track.enabled = !muted;
    }
    const id = this.myTracks.get(kind === 'video' ? 'camera' : 'microphone');
    if (id) this.send({ type: 'mute', track: id, muted });
  }

  /** The camera and microphone tracks being published now. */
  localTracks(): MediaStreamTrack[] {
    return this.local.getTracks();
  }

  /** Swaps in another camera or microphone without renegotiating. */
  async replaceDevice(track: MediaStreamTrack) {
    const old = this.local.getTracks().find((t) => t.kind === track.kind);
    for (const transceiver of this.sources.keys()) {
      if (transceiver.sender.track === old) await transceiver.sender.replaceTrack(track);
    }
    if (old) {
      track.enabled = old.enabled;
      this.local.removeTrack(old);
      old.stop();
    }
    this.local.addTrack(track);
  }

  /** Publishes a screen (or window, or tab) the person picks; resolves to the captured track. */
  async shareScreen(): Promise<MediaStreamTrack> {
    const capture = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const [track] = capture.getVideoTracks();
    if (!track) throw new Error('no screen was shared');
    const transceiver = this.publisher.addTransceiver(track, { direction: 'sendonly', streams: [capture] });
    this.sources.set(transceiver, 'screen_share');
    this.screen = transceiver;
    // The browser's own "Stop sharing" control ends the track.
    track.addEventListener('ended', () => void this.stopScreenShare());
    await this.renegotiate();
    return track;
  }

  async stopScreenShare() {
    const transceiver = this.screen;
    if (!transceiver) return;
    this.screen = null;
    transceiver.sender.track?.stop();
    transceiver.stop();
    this.sources.delete(transceiver);
    this.myTracks.delete('screen_share');
    this.listener.screenShareEnded();
    if (!this.leaving) await this.renegotiate();
  }

  private async sampleQuality() {
    if (this.droppedAt !== null) {
      this.listener.connectionQuality('lost');
      return;
    }
    const states = [this.publisher.connectionState, this.subscriber.connectionState];
    if (states.some((s) => s === 'failed' || s === 'disconnected')) {
      this.listener.connectionQuality('lost');
      return;
    }
    if (this.publisher.connectionState !== 'connected') return;
    const [mine, theirs] = await Promise.all([this.publisher.getStats(), this.subscriber.getStats()]);
    const sent = readStats(mine);
    const received = readStats(theirs);
    const delta = {
      received: received.counters.received - this.lastCounters.received,
      lost: received.counters.lost - this.lastCounters.lost,
    };
    this.lastCounters = received.counters;
    const incomingLoss = delta.received + delta.lost > 0 ? delta.lost / (delta.received + delta.lost) : 0;
    const local = rateConnection(Math.max(incomingLoss, sent.remoteLoss), sent.rtt ?? received.rtt);
    this.listener.connectionQuality(worseOf(local, this.serverQuality));
  }

  /**
   * Tells the server how a remote video tile is shown; only changes are sent. What each tile
   * wants is kept, so a change made while the socket is down goes out with the resume.
   */
  tileShown(trackId: string, visible: boolean, width: number) {
    const quality = qualityFor(visible, width);
    if (this.qualities.get(trackId) === quality) return;
    this.qualities.set(trackId, quality);
    this.send({ type: 'set_quality', track: trackId, quality });
  }

  chat(text: string) {
    this.send({ type: 'chat', text });
  }

  /** Mutes someone else's track (interviewers only; the server checks). */
  moderateMute(trackId: string) {
    this.send({ type: 'moderate_mute', track: trackId });
  }

  /** Removes a participant from the room (interviewers only; the server checks). They cannot
   * come back until a moderator readmits them. */
  moderateRemove(identity: string) {
    this.send({ type: 'moderate_remove', participant: identity });
  }

  /** Lets a removed participant join again (interviewers only; the server checks). */
  readmit(identity: string) {
    this.send({ type: 'readmit', participant: identity });
  }

  leave() {
    window.removeEventListener('pagehide', this.leaveOnPageHide);
    this.send({ type: 'leave' });
    this.leaving = true;
    clearInterval(this.qualityTimer);
    this.socket.close();
    this.screen?.sender.track?.stop();
    this.publisher.close();
    this.subscriber.close();
    for (const track of this.local.getTracks()) track.stop();
  }
}
