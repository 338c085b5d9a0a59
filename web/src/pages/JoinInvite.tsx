// The page a candidate's invite link opens. Shows what the interview is, and what of it is kept
// and for how long, before the link is used up; continuing redeems it once and opens the
// interview (as a guest, or on the signed-in account).

import { useEffect, useState } from 'preact/hooks';
import { useLocation, useRoute } from 'preact-iso';
import { ApiError, api, redeemInvite } from '../api';
import { ErrorAlert, Loading, PageTitle } from '../components/ui';
import { useSession } from '../session';
import { formatWhen } from '../time';

interface InvitePreview {
  interview_id: string;
  title: string;
  scheduled_start: string;
  duration_minutes: number;
  time_zone: string;
  candidate_name: string;
  interviewers: string[];
  kept: KeptData;
}

/** What the interview keeps about its candidate, in days after it (0: until deleted by an admin). */
export interface KeptData {
  recorded_automatically: boolean;
  proctored: boolean;
  recording_days: number;
  proctoring_days: number;
  code_days: number;
}

function forDays(days: number): string {
  return days > 0 ? `for ${days} days after the interview, then deleted` : 'until an administrator deletes it';
}

/** What is kept about the candidate and for how long, in sentences, before they go in. */
export function keptStatements(kept: KeptData): string[] {
  const recorded = kept.recorded_automatically
    ? 'This interview is set to be recorded'
    : 'The interviewers may record this interview';
  return [
    `The code written in the shared editor, with its history and the programs run, is kept ${forDays(kept.code_days)}.`,
    `${recorded}: you will be asked first, and nothing of yours (your camera, microphone, screen, name or chat) is ` +
      `recorded unless you agree. A recording, with its chat, is kept ${forDays(kept.recording_days)}.`,
    kept.proctored
      ? 'This interview is proctored: you will be asked first. Moments marked for a person to look at are kept with ' +
        `a still picture ${forDays(kept.proctoring_days)}.`
      : `If the interviewers turn on proctoring, you will be asked first; what it marks is kept ${forDays(kept.proctoring_days)}.`,
    "These are seen only by the people of this interview (its interviewers, observers and reviewers) and by " +
      'administrators. You may ask for a copy of what is kept about you, or for its deletion.',
  ];
}

const PROBLEM: Record<string, string> = {
  invite_not_found: 'This invite link is not valid. Check that you copied all of it.',
  invite_used: 'This invite link has already been used. If that was not you, ask your interviewer for a new link.',
  invite_expired: 'This invite link has expired because the interview is over.',
  invite_revoked: 'This invite link is no longer valid: it was replaced, or the interview was cancelled.',
};

function problemText(error: unknown): string | null {
  return error instanceof ApiError ? (PROBLEM[error.code] ?? null) : null;
}

export function JoinInvite() {
  const { params } = useRoute();
  const { route } = useLocation();
  const { me, ready, setMe } = useSession();
  const [preview, setPreview] = useState<InvitePreview | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const token = params.token ?? '';

  useEffect(() => {
    api<InvitePreview>('POST', '/api/invites/inspect', { token }).then(setPreview, setError);
  }, [token]);

  const accept = async () => {
    setBusy(true);
    setError(null);
    try {
      const result = await redeemInvite(token);
      if (result.me) setMe(result.me);
      route(`/interviews/${result.interviewId}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  const problem = problemText(error);
  return (
    <section class="card narrow">
      <PageTitle>{problem ? 'Invite link problem' : 'You are invited to an interview'}</PageTitle>
      {problem ? (
        <p class="alert" role="alert">
          {problem}
        </p>
      ) : (
        <ErrorAlert error={error} />
      )}
      {!preview && !error && <Loading what="your invitation" />}
      {preview && !problem && (
        <>
          <dl class="facts">
            <dt>Interview</dt>
            <dd>{preview.title}</dd>
            <dt>When</dt>
            <dd>
              {formatWhen(preview.scheduled_start)} · {preview.duration_minutes} minutes
            </dd>
            <dt>Invited</dt>
            <dd>{preview.candidate_name}</dd>
            {preview.interviewers.length > 0 && (
              <>
                <dt>With</dt>
                <dd>{preview.interviewers.join(', ')}</dd>
              </>
            )}
          </dl>
          <h2>What is kept</h2>
          <ul class="kept">
            {keptStatements(preview.kept).map((line) => (
              <li key={line}>{line}</li>
            ))}
          </ul>
          <p class="hint">
            {ready && me?.kind === 'user'
              ? `Continuing adds this interview to your account (${me.email}).`
              : 'No account is needed. This link works once; this browser stays signed in to the interview until it ends.'}
          </p>
          <button type="button" disabled={busy} onClick={accept}>
            {busy ? 'Opening…' : 'Continue to the interview'}
          </button>
        </>
      )}
    </section>
  );
}
