// Before joining: the camera preview, the microphone meter and the device pickers.
import { DevicePickers, MicLevel } from '../devices';
import { ErrorAlert, PageTitle } from '../ui';

export function PreJoin({ interviewId, title, error, preview, attachPreview, onPick, onJoin }: {
  interviewId: string;
  title: string | undefined;
  error: unknown;
  preview: MediaStream | null;
  attachPreview: (element: HTMLVideoElement | null) => void;
  onPick: (kind: 'audio' | 'video', deviceId: string) => void;
  onJoin: () => void;
}) {
  return (
    <section class="card narrow">
      <PageTitle>Ready to join?</PageTitle>
      {title && <p class="when">{title}</p>}
      <ErrorAlert error={error} />
      <video ref={attachPreview} class="preview" autoPlay playsInline muted aria-label="Your camera preview" />
      {preview && <MicLevel stream={preview} />}
      {preview && <DevicePickers stream={preview} onPick={onPick} />}
      <div class="actions">
        <button type="button" disabled={!preview} onClick={onJoin}>
          Join room
        </button>
        <a href={`/interviews/${interviewId}`}>Back</a>
      </div>
    </section>
  );
}
