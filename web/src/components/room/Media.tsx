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
    // Visibility comes from scrolling, size from the layout (a resized window, a tile that grows
    // when someone leaves); either may change the layer. Widths are in device pixels, so a
    // high-density screen gets the layer that is sharp on it.
    // Nothing is reported before the first visibility: a tile is not "hidden" before it is laid out.
    let visible: boolean | null = null;
    let width = 0;
    const report = () => {
      if (visible !== null) connection.tileShown(trackId, visible, width * window.devicePixelRatio);
    };
    // A batch can hold several entries for the tile, oldest first (it crossed into and out of
    // view before the callback ran): the last one is how it is now.
    const shown = new IntersectionObserver((entries) => {
      const entry = entries.at(-1);
      if (!entry) return;
      visible = entry.isIntersecting;
      width = entry.boundingClientRect.width;
      report();
    });
    const resized = new ResizeObserver(([entry]) => {
      if (!entry) return;
      width = entry.contentRect.width;
      report();
    });
    shown.observe(element);
    resized.observe(element);
    return () => {
      shown.disconnect();
      resized.disconnect();
    };
  }, [connection, trackId]);
  return kind === 'video' ? (
    <video ref={ref} autoPlay playsInline muted aria-label={label} />
  ) : (
    <audio ref={ref} autoPlay aria-label={label} />
  );
}
