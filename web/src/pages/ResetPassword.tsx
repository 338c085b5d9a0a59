import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ApiError, resetPassword } from '../api';
import { ErrorAlert, Field, PageTitle } from '../components/ui';

/** The token of an emailed link: after `#`, so it never reaches a server log or a Referer. */
export function tokenFromHash(hash: string): string {
  return hash.replace(/^#/, '').trim();
}

/** Sets a new password with the token of an emailed link. */
export function ResetPassword() {
  const { route } = useLocation();
  const [token] = useState(() => {
    if (typeof window === 'undefined') return '';
    const found = tokenFromHash(window.location.hash);
    // Out of the address bar and the history once read.
    if (found) window.history.replaceState(null, '', window.location.pathname);
    return found;
  });
  const [password, setPassword] = useState('');
  const [repeated, setRepeated] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (password !== repeated) {
      setError(new ApiError(422, 'validation_failed', 'The two passwords differ.', [
        { field: 'repeated', message: 'must be the same password' },
      ]));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await resetPassword(token, password);
      route('/signin?reset=1');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (name: string) => (error instanceof ApiError ? error.fieldMessage(name) : undefined);

  if (!token) {
    return (
      <section class="card narrow">
        <PageTitle>Choose a new password</PageTitle>
        <p class="notice" role="status">
          This page needs the link from the email. <a href="/forgot-password">Ask for a new link</a>.
        </p>
      </section>
    );
  }
  return (
    <section class="card narrow">
      <PageTitle>Choose a new password</PageTitle>
      <form onSubmit={submit} noValidate>
        <Field id="password" label="New password (at least 10 characters)" type="password"
          autoComplete="new-password" required value={password} onInput={setPassword}
          error={fieldError('password')} />
        <Field id="repeated" label="The same password again" type="password" autoComplete="new-password"
          required value={repeated} onInput={setRepeated} error={fieldError('repeated')} />
        <ErrorAlert error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Set the new password'}
        </button>
      </form>
      <p>
        Setting it signs you out on every device. <a href="/forgot-password">Ask for a new link</a> if this
        one expired.
      </p>
    </section>
  );
}
