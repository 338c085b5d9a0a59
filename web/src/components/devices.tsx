// Camera and microphone pickers and the microphone level meter, shown before joining and in the
// room's settings.

import { useEffect, useState } from 'preact/hooks';
import { type Devices, listDevices, watchLevel } from '../media';

interface PickerProps {
  /** The stream whose tracks are the current choice; devices are listed once it is open. */
  stream: MediaStream;
  onPick(kind: 'audio' | 'video', deviceId: string): void;
}

function currentDevice(stream: MediaStream, kind: 'audio' | 'video'): string {
  const track = stream.getTracks().find((t) => t.kind === kind);
  return track?.getSettings().deviceId ?? '';
}

export function DevicePickers({ stream, onPick }: PickerProps) {
  const [devices, setDevices] = useState<Devices>({ cameras: [], microphones: [] });
  useEffect(() => {
    const refresh = () => void listDevices().then(setDevices);
    refresh();
    navigator.mediaDevices.addEventListener('devicechange', refresh);
    return () => navigator.mediaDevices.removeEventListener('devicechange', refresh);
  }, [stream]);
  const select = (kind: 'audio' | 'video', id: string, label: string, options: MediaDeviceInfo[]) => (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={currentDevice(stream, kind)}
        onChange={(e) => onPick(kind, (e.currentTarget as HTMLSelectElement).value)}>
        {options.map((d, i) => (
          <option key={d.deviceId} value={d.deviceId}>
            {d.label || `${label} ${i + 1}`}
          </option>
        ))}
      </select>
    </div>
  );
  return (
    <div class="row">
      {select('video', 'camera-picker', 'Camera', devices.cameras)}
      {select('audio', 'microphone-picker', 'Microphone', devices.microphones)}
    </div>
  );
}

export function MicLevel({ stream }: { stream: MediaStream }) {
  const [level, setLevel] = useState(0);
  const track = stream.getAudioTracks()[0];
  useEffect(() => (track ? watchLevel(track, setLevel) : undefined), [track]);
  return (
    <div class="level">
      <span id="mic-level-label">Microphone level</span>
      <meter aria-labelledby="mic-level-label" min={0} max={1} low={0.15} high={0.85} optimum={0.5}
        value={level} />
    </div>
  );
}
