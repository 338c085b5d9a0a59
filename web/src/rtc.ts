// The browser side of a room: the signaling socket and the two peer connections (publisher:
// our camera and microphone; subscriber: everyone else), as the server expects them.

export type Source = 'camera' | 'microphone' | 'screen_share' | 'secondary_camera';

export interface ParticipantInfo {
  identity: string;
  name: string;
  role: string;
  reconnecting: boolean;
}

export interface TrackInfo {
  id: string;
  participant: string;
  source: Source;
  muted: boolean;
}

export interface ChatLine {
  from: string;
  name: string;
  text: string;
  at: number;
}

export interface RoomListener {
  joined(you: ParticipantInfo, participants: ParticipantInfo[], tracks: TrackInfo[]): void;
  participantJoined(p: ParticipantInfo): void;
  participantLeft(identity: string): void;
  trackPublished(t: TrackInfo): void;
  trackUnpublished(id: string): void;
  trackMuted(id: string, muted: boolean): void;
  remoteTrack(trackId: string, track: MediaStreamTrack): void;
  chat(line: ChatLine): void;
  activeSpeakers(identities: string[]): void;
  error(code: string, message: string): void;
  closed(reason: string): void;
}

/** Waits until a peer connection has gathered its candidates (the server does not trickle). */
function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.removeEventListener('icegatheringstatechange', done);
        resolve();
      }
    };
    pc.addEventListener('icegatheringstatechange', done);
    // Host candidates gather at once; never hang on a slow interface.
    setTimeout(resolve, 2000);
  });
}

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

export function rtcUrl(room: string, location: Location = window.location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/rtc/${encodeURIComponent(room)}`;
}

export class RoomConnection {
  private socket: WebSocket;
  private publisher = new RTCPeerConnection();
  private subscriber = new RTCPeerConnection();
  private trackMids = new Map<MediaStreamTrack, string>();
  private myTracks = new Map<string, string>();
  private qualities = new Map<string, Quality>();

  constructor(
    room: string,
    token: string,
    private readonly local: MediaStream,
    private readonly listener: RoomListener,
  ) {
    this.socket = new WebSocket(rtcUrl(room));
    this.socket.onopen = () => this.send({ type: 'join', version: 1, token });
    this.socket.onmessage = (event) => void this.onMessage(JSON.parse(String(event.data)));
    this.socket.onclose = () => listener.closed('disconnected');
    this.subscriber.ontrack = (event) => listener.remoteTrack(event.track.id, event.track);
  }

  private send(message: object) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  private async publish() {
    const tracks: { mid: string; source: Source }[] = [];
    const transceivers: [RTCRtpTransceiver, Source][] = [];
    for (const track of this.local.getTracks()) {
      const video = track.kind === 'video';
      const transceiver = this.publisher.addTransceiver(track, {
        direction: 'sendonly',
        streams: [this.local],
        ...(video ? { sendEncodings: SIMULCAST } : {}),
      });
      transceivers.push([transceiver, video ? 'camera' : 'microphone']);
    }
    await this.publisher.setLocalDescription(await this.publisher.createOffer());
    await gathered(this.publisher);
    for (const [transceiver, source] of transceivers) {
      if (transceiver.mid && transceiver.sender.track) {
        tracks.push({ mid: transceiver.mid, source });
        this.trackMids.set(transceiver.sender.track, transceiver.mid);
      }
    }
    this.send({ type: 'publish_offer', sdp: this.publisher.localDescription?.sdp ?? '', tracks });
  }

  private async onMessage(message: any) {
    switch (message.type) {
      case 'joined':
        this.listener.joined(message.you, message.participants, message.tracks);
        await this.publish();
        break;
      case 'publish_answer':
        await this.publisher.setRemoteDescription({ type: 'answer', sdp: message.sdp });
        break;
      case 'subscriber_offer':
        await this.subscriber.setRemoteDescription({ type: 'offer', sdp: message.sdp });
        await this.subscriber.setLocalDescription(await this.subscriber.createAnswer());
        await gathered(this.subscriber);
        this.send({ type: 'subscriber_answer', sdp: this.subscriber.localDescription?.sdp ?? '' });
        break;
      case 'participant_joined':
        this.listener.participantJoined(message.participant);
        break;
      case 'participant_left':
        this.listener.participantLeft(message.participant);
        break;
      case 'track_published':
        this.listener.trackPublished(message.track);
        break;
      case 'track_unpublished':
        this.listener.trackUnpublished(message.track);
        break;
      case 'track_muted':
        this.listener.trackMuted(message.track, message.muted);
        break;
      case 'chat':
        this.listener.chat(message);
        break;
      case 'active_speakers':
        this.listener.activeSpeakers(message.participants);
        break;
      case 'error':
        this.listener.error(message.code, message.message);
        break;
      case 'removed':
        this.listener.closed(message.reason);
        break;
    }
  }

  /** Remembers which server track id is ours, for mute messages. */
  ownTrack(trackId: string, source: Source) {
    this.myTracks.set(source, trackId);
  }

  setMuted(kind: 'audio' | 'video', muted: boolean) {
    for (const track of this.local.getTracks()) {
      if (track.kind === kind) track.enabled = !muted;
    }
    const id = this.myTracks.get(kind === 'video' ? 'camera' : 'microphone');
    if (id) this.send({ type: 'mute', track: id, muted });
  }

  /** Tells the server how a remote video tile is shown; only changes are sent. */
  tileShown(trackId: string, visible: boolean, width: number) {
    const quality = qualityFor(visible, width);
    if (this.qualities.get(trackId) === quality) return;
    this.qualities.set(trackId, quality);
    this.send({ type: 'set_quality', track: trackId, quality });
  }

  chat(text: string) {
    this.send({ type: 'chat', text });
  }

  leave() {
    this.send({ type: 'leave' });
    this.socket.close();
    this.publisher.close();
    this.subscriber.close();
    for (const track of this.local.getTracks()) track.stop();
  }
}
