import { useState } from 'preact/hooks';
import { ApiError, forgotPassword } from '../api';
import { ErrorAlert, Field, PageTitle } from '../components/ui';

/** Asks for a link that sets a new password. */
export function ForgotPassword() {
  const [email, setEmail] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [sent, setSent] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setSent(await forgotPassword(email));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (name: string) => (error instanceof ApiError ? error.fieldMessage(name) : undefined);

  return (
    <section class="card narrow">
      <PageTitle>Forgot your password?</PageTitle>
      {/* Always in the page, so screen readers announce what appears in it. */}
      <p class={sent ? 'notice' : undefined} role="status">
        {sent && `${sent} Check your inbox; the link works once and for a limited time.`}
      </p>
      {!sent && (
        <form onSubmit={submit} noValidate>
          <p>Enter the email address of your account and we send you a link to choose a new password.</p>
          <Field id="email" label="Email" type="email" autoComplete="username" required value={email}
            onInput={setEmail} error={fieldError('email')} />
          <ErrorAlert error={error} />
          <button type="submit" disabled={busy}>
            {busy ? 'Sending…' : 'Send the link'}
          </button>
        </form>
      )}
      <p>
        <a href="/signin">Back to sign in</a>
      </p>
    </section>
  );
}
