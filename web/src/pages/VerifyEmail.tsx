import { useEffect, useState } from 'preact/hooks';
import { api, type Me } from '../api';
import { ErrorAlert, PageTitle } from '../components/ui';
import { useSession } from '../session';
import { tokenFromHash } from './ResetPassword';

/** Confirms an account's address with the token of the emailed link, as soon as it opens. */
export function VerifyEmail() {
  const { me, setMe } = useSession();
  const [token] = useState(() => {
    if (typeof window === 'undefined') return '';
    const found = tokenFromHash(window.location.hash);
    // Out of the address bar and the history once read.
    if (found) window.history.replaceState(null, '', window.location.pathname);
    return found;
  });
  const [state, setState] = useState<'working' | 'done' | 'failed'>(token ? 'working' : 'failed');
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!token) return;
    api<void>('POST', '/api/auth/email/verify', { token }).then(
      () => {
        setState('done');
        // Whoever is signed in here is asked again (the link may have been another account's).
        if (me) api<Me>('GET', '/api/me').then(setMe, () => undefined);
      },
      (err) => {
        setError(err);
        setState('failed');
      },
    );
  }, [token]);
  return (
    <section class="card narrow">
      <PageTitle>Confirm your email address</PageTitle>
      {state === 'working' && <p role="status">Confirming…</p>}
      {state === 'done' && (
        <p role="status">
          Your address is confirmed. <a href="/">Go to your interviews</a>.
        </p>
      )}
      {state === 'failed' && (
        <>
          <ErrorAlert error={error} />
          <p>
            This page needs the link from the email. Signed in, you can ask for a new one on{' '}
            <a href="/">your interviews page</a>.
          </p>
        </>
      )}
    </section>
  );
}
