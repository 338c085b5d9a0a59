// A remote or local track in a <video> or <audio> element; a remote video tile reports whether
// it is on screen and how wide, so the server sends the layer it needs.

import { useEffect, useRef } from 'preact/hooks';
import type { RoomConnection } from '../../rtc';

export interface MediaProps {
  track: MediaStreamTrack;
  kind: 'video' | 'audio';
  label: string;
  /** For remote video: reports visibility and size so hidden tiles get no video. */
  shown?: { connection: RoomConnection; trackId: string };
}

export function Media({ track, kind, label, shown }: MediaProps) {
  const ref = useRef<HTMLVideoElement & HTMLAudioElement>(null);
  useEffect(() => {
    if (ref.current) {
      ref.current.srcObject = new MediaStream([track]);
      void ref.current.play().catch(() => undefined);
    }
  }, [track]);
  const connection = shown?.connection;
  const trackId = shown?.trackId;
  useEffect(() => {
    const element = ref.current;
    if (!element || !connection || !trackId) return;
    const observer = new IntersectionObserver(([entry]) => {
      if (entry) connection.tileShown(trackId, entry.isIntersecting, entry.boundingClientRect.width);
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [connection, trackId]);
  return kind === 'video' ? (
    <video ref={ref} autoPlay playsInline muted aria-label={label} />
  ) : (
    <audio ref={ref} autoPlay aria-label={label} />
  );
}
