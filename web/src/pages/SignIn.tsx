import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ApiError, signIn } from '../api';
import { ErrorAlert, Field, PageTitle } from '../components/ui';
import { useSession } from '../session';

/** Only same-site paths may be returned to after sign-in. */
export function safeNext(next: string | undefined): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function SignIn() {
  const { setMe } = useSession();
  const { route, query } = useLocation();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const registered = query.registered === '1';
  const reset = query.reset === '1';

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setMe(await signIn(email, password));
      route(safeNext(query.next));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (name: string) => (error instanceof ApiError ? error.fieldMessage(name) : undefined);

  return (
    <section class="card narrow">
      <PageTitle>Sign in</PageTitle>
      {registered && (
        <p class="notice" role="status">
          Your account is ready. Sign in with the email and password you chose.
        </p>
      )}
      {reset && (
        <p class="notice" role="status">
          Your new password is set, and every other session is signed out. Sign in with it.
        </p>
      )}
      <form onSubmit={submit} noValidate>
        <Field id="email" label="Email" type="email" autoComplete="username" required value={email}
          onInput={setEmail} error={fieldError('email')} />
        <Field id="password" label="Password" type="password" autoComplete="current-password" required
          value={password} onInput={setPassword} error={fieldError('password')} />
        <ErrorAlert error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p>
        <a href="/forgot-password">Forgot your password?</a>
      </p>
      <p>
        New here? <a href="/register">Create an account</a>
      </p>
    </section>
  );
}
