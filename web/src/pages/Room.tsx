// The interview room. The media (SFU, signaling, video grid) is not built yet; this page gets a
// real join token so the access rules are exercised end to end, and says plainly what is missing.

import { useEffect, useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle } from '../components/ui';
import type { JoinResponse } from '../types';

function RoomContent({ id }: { id: string }) {
  const [joined, setJoined] = useState<JoinResponse | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<JoinResponse>('POST', `/api/interviews/${encodeURIComponent(id)}/join`, {}).then(setJoined, setError);
  }, [id]);
  return (
    <section class="card narrow">
      <PageTitle>Interview room</PageTitle>
      <ErrorAlert error={error} />
      {!joined && !error && <Loading what="your room access" />}
      {joined && (
        <>
          <p role="status">
            You may enter this room as <strong>{joined.role}</strong>.
          </p>
          <p class="notice">
            Live audio and video are not available yet in this version of Sightline: the media server is the next
            piece being built.
          </p>
        </>
      )}
      <p>
        <a href={`/interviews/${id}`}>Back to the interview</a>
      </p>
    </section>
  );
}

export function Room() {
  const { params } = useRoute();
  return (
    <RequireSession>
      <RoomContent id={params.id} />
    </RequireSession>
  );
}
