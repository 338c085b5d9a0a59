import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ApiError, register } from '../api';
import { ErrorAlert, Field, PageTitle } from '../components/ui';

export function Register() {
  const { route } = useLocation();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await register(email, password, name);
      route('/signin?registered=1');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = (field: string) => (error instanceof ApiError ? error.fieldMessage(field) : undefined);

  return (
    <section class="card narrow">
      <PageTitle>Create an account</PageTitle>
      <form onSubmit={submit} noValidate>
        <Field id="display_name" label="Your name" autoComplete="name" required value={name} onInput={setName}
          error={fieldError('display_name')} />
        <Field id="email" label="Email" type="email" autoComplete="email" required value={email}
          onInput={setEmail} error={fieldError('email')} />
        <Field id="password" label="Password" type="password" autoComplete="new-password" required
          hint="At least 10 characters." value={password} onInput={setPassword}
          error={fieldError('password')} />
        <ErrorAlert error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create account'}
        </button>
      </form>
      <p>
        Already have an account? <a href="/signin">Sign in</a>
      </p>
    </section>
  );
}
