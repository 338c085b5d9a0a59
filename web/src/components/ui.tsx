// Small accessible building blocks: labelled fields, announced errors, page headings.

import { h, type ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { ApiError } from '../api';

interface FieldProps {
  id: string;
  type?: 'text' | 'email' | 'password' | 'number' | 'datetime-local';
  autoComplete?: string;
  required?: boolean;
  min?: string;
  max?: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  error?: string;
  hint?: string;
}

/** An input with its label, hint and error wired up for assistive technology. */
export function Field({ id, label, value, onInput, error, hint, type = 'text', ...rest }: FieldProps) {
  const describedBy = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  const inputProps = {
    id,
    name: id,
    value,
    onInput: (e: Event) => onInput((e.currentTarget as HTMLInputElement).value),
    'aria-invalid': error ? ('true' as const) : undefined,
    'aria-describedby': describedBy || undefined,
    ...rest,
  };
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {/* h() rather than JSX: preact types each input `type` separately, and ours is a variable. */}
      {h('input', { type, ...inputProps })}
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {error && (
        <p class="field-error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}

/** An error announced to screen readers as soon as it appears. */
export function ErrorAlert({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof ApiError ? error.message : 'Something went wrong. Please try again.';
  return (
    <div class="alert" role="alert">
      {message}
    </div>
  );
}

/** Whether an API error means "not there, or not yours to see": the server answers both alike. */
export function isUnavailable(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 404 || error.status === 403);
}

/**
 * The page for something that does not exist or that the reader may not see. It reads the same
 * in both cases, so it does not reveal which; it says who can see such things and what to do.
 */
export function Unavailable({ title, audience }: { title: string; audience: string }) {
  return (
    <section class="card narrow">
      <PageTitle>{title}</PageTitle>
      <p>
        The address may be mistyped or out of date, it may have been deleted, or your account may not have access to
        it. {audience}
      </p>
      <p>If you think you should have access, ask the person who sent you the link.</p>
      <p>
        <a href="/">Go to your interviews</a>
      </p>
    </section>
  );
}

/** A page title that takes focus when the page opens, so keyboard and screen reader users land on it. */
export function PageTitle({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <h1 tabIndex={-1} ref={ref}>
      {children}
    </h1>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}
