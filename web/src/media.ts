// Local media: opening the camera and microphone a person picked, listing the devices they can
// pick from, and measuring how loud the microphone is (for the level meter).

export interface DeviceChoice {
  camera?: string;
  microphone?: string;
}

export interface Devices {
  cameras: MediaDeviceInfo[];
  microphones: MediaDeviceInfo[];
}

/**
 * The capture we publish: 1280×720 at 30 fps where the camera can, less where it cannot (`ideal`
 * never fails). Simulcast scales it down to 640×360 and 320×180 for the lower layers; Chromium
 * sends only as many layers as the capture is large enough for, so a 640×480 capture would never
 * send a full-size layer.
 */
export const VIDEO: MediaTrackConstraints = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30 },
};

export function constraintsFor(choice: DeviceChoice): MediaStreamConstraints {
  return {
    video: choice.camera ? { ...VIDEO, deviceId: { exact: choice.camera } } : VIDEO,
    audio: choice.microphone ? { deviceId: { exact: choice.microphone } } : true,
  };
}

export function openDevices(choice: DeviceChoice): Promise<MediaStream> {
  return navigator.mediaDevices.getUserMedia(constraintsFor(choice));
}

/** One device of a kind, opened on its own (to swap it into a running call). */
export async function openDevice(kind: 'audio' | 'video', deviceId: string): Promise<MediaStreamTrack> {
  const choice = kind === 'video' ? { camera: deviceId } : { microphone: deviceId };
  const all = constraintsFor(choice);
  const stream = await navigator.mediaDevices.getUserMedia({ [kind]: all[kind] });
  const [track] = stream.getTracks();
  if (!track) throw new Error(`no ${kind} track`);
  return track;
}

/** Labels are only readable once the page has camera permission, so call this after opening. */
export async function listDevices(): Promise<Devices> {
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    cameras: all.filter((d) => d.kind === 'videoinput' && d.deviceId),
    microphones: all.filter((d) => d.kind === 'audioinput' && d.deviceId),
  };
}

/** Root mean square of audio samples in [-1, 1], scaled so speech reads well on a 0–1 meter. */
export function levelOf(samples: Float32Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (const s of samples) sum += s * s;
  const rms = Math.sqrt(sum / samples.length);
  // Speech sits around an RMS of 0.05–0.2; a square root spreads that over the meter.
  return Math.min(1, Math.sqrt(rms) * 1.4);
}

/** Calls `onLevel` about ten times a second with the microphone's level; returns a stopper. */
export function watchLevel(track: MediaStreamTrack, onLevel: (level: number) => void): () => void {
  const context = new AudioContext();
  const source = context.createMediaStreamSource(new MediaStream([track]));
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    onLevel(track.enabled ? levelOf(samples) : 0);
  }, 100);
  // Autoplay rules may start the context suspended; a join click resumes it.
  void context.resume().catch(() => undefined);
  return () => {
    clearInterval(timer);
    source.disconnect();
    void context.close();
  };
}
