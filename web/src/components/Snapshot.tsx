// An event's snapshot: fetched with the session (it needs the bearer token), shown as an image.

import { useEffect, useState } from 'preact/hooks';
import { apiBlob } from '../api';
import { snapshotPath } from '../proctoring';

export function Snapshot({ interview, event, label }: { interview: string; event: string; label: string }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    let objectUrl: string | null = null;
    let cancelled = false;
    apiBlob(snapshotPath(interview, event)).then(
      (blob) => {
        if (cancelled) return;
        objectUrl = URL.createObjectURL(blob);
        setUrl(objectUrl);
      },
      () => undefined,
    );
    return () => {
      cancelled = true;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [interview, event]);
  return url ? <img class="snapshot" src={url} alt={label} /> : <span class="snapshot placeholder" aria-hidden="true" />;
}
