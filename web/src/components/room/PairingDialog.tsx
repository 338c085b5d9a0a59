// The dialog that pairs a phone as a second camera.

import { useEffect, useRef, useState } from 'preact/hooks';
import { type PairingCreated, startPairing } from '../../phone';
import { ErrorAlert } from '../ui';

/** Seconds left until an RFC 3339 instant, never negative. */
function secondsUntil(instant: string, now: number): number {
  return Math.max(0, Math.round((Date.parse(instant) - now) / 1000));
}

/**
 * "Add phone camera": the server's QR code for the pairing link, the link itself and a short
 * code to type when scanning fails, with the time left. A new code replaces the old one.
 */
export function PairingDialog({ interviewId, candidate, candidateName, onClose }: {
  interviewId: string;
  candidate?: string;
  candidateName?: string;
  onClose: () => void;
}) {
  const [pairing, setPairing] = useState<PairingCreated | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [now, setNow] = useState(Date.now());
  const heading = useRef<HTMLHeadingElement>(null);
  const issue = () => {
    setError(null);
    startPairing(interviewId, candidate).then(setPairing, setError);
  };
  useEffect(issue, [interviewId, candidate]);
  useEffect(() => {
    heading.current?.focus();
    const timer = setInterval(() => setNow(Date.now()), 1000);
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') onClose();
    };
    document.addEventListener('keydown', onKey);
    return () => {
      clearInterval(timer);
      document.removeEventListener('keydown', onKey);
    };
  }, []);
  const left = pairing ? secondsUntil(pairing.expires_at, now) : 0;
  return (
    <div class="dialog-backdrop">
      <section class="card dialog pairing" role="dialog" aria-modal="true" aria-labelledby="pairing-heading">
        <h2 id="pairing-heading" tabIndex={-1} ref={heading}>
          {candidateName ? `Add ${candidateName}'s phone camera` : 'Add your phone as a camera'}
        </h2>
        <ErrorAlert error={error} />
        {pairing && left > 0 && (
          <>
            <p>Scan this code with the phone's camera app, on the same network as this computer.</p>
            <img src={`data:image/svg+xml;charset=utf-8,${encodeURIComponent(pairing.qr_svg)}`}
              alt="QR code that opens the phone pairing page" data-pairing-url={pairing.url} />
            <p>
              Or open <span class="link">{pairing.url}</span>
            </p>
            <p>
              Or go to <span class="link">{pairing.code_url}</span> and type <span class="code">{pairing.code}</span>
            </p>
            <p class="muted" role="timer" aria-live="off">
              Valid for {Math.floor(left / 60)}:{String(left % 60).padStart(2, '0')}, once.
            </p>
          </>
        )}
        {pairing && left === 0 && <p>This code has expired.</p>}
        <div class="actions">
          {pairing && (
            <button type="button" class="secondary" onClick={issue}>
              New code
            </button>
          )}
          <button type="button" onClick={onClose}>
            Close
          </button>
        </div>
      </section>
    </div>
  );
}
