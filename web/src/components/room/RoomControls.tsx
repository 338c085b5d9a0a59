// The room's controls, under the video: microphone, camera, screen, devices, recording (for
// interviewers), the candidate's phone camera, and leaving.
import type { RecordingNotice } from '../../rtc';

export function RoomControls(props: {
  micOff: boolean;
  camOff: boolean;
  sharing: boolean;
  showSettings: boolean;
  /** The recording's state, for those who start and stop it; null for the others. */
  recording: RecordingNotice['state'] | null;
  canAddPhone: boolean;
  hasPhone: boolean;
  onMic: () => void;
  onCamera: () => void;
  onScreen: () => void;
  onSettings: () => void;
  onRecording: () => void;
  onAddPhone: () => void;
  onRemovePhone: () => void;
  onLeave: () => void;
}) {
  return (
    <div class="actions">
      <button type="button" class="secondary" aria-pressed={props.micOff} onClick={props.onMic}>
        {props.micOff ? 'Unmute microphone' : 'Mute microphone'}
      </button>
      <button type="button" class="secondary" aria-pressed={props.camOff} onClick={props.onCamera}>
        {props.camOff ? 'Turn camera on' : 'Turn camera off'}
      </button>
      <button type="button" class="secondary" aria-pressed={props.sharing} onClick={props.onScreen}>
        {props.sharing ? 'Stop sharing' : 'Share screen'}
      </button>
      <button type="button" class="secondary" aria-expanded={props.showSettings} onClick={props.onSettings}>
        Devices
      </button>
      {props.recording !== null && (
        <button type="button" class="secondary" onClick={props.onRecording}>
          {props.recording === 'off' ? 'Start recording' : 'Stop recording'}
        </button>
      )}
      {props.canAddPhone && (
        <button type="button" class="secondary" aria-haspopup="dialog" onClick={props.onAddPhone}>
          Add phone camera
        </button>
      )}
      {props.hasPhone && (
        <button type="button" class="secondary" onClick={props.onRemovePhone}>
          Remove phone
        </button>
      )}
      <button type="button" class="danger" onClick={props.onLeave}>
        Leave
      </button>
    </div>
  );
}
