// Admins' scorecard templates: each a name and criteria (scored 1 to 4, with guidance for the
// interviewer). Editing one never changes a scorecard already submitted from it; retiring one
// stops it being offered for new scorecards.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, Loading, PageTitle, Unavailable, isUnavailable } from '../components/ui';
import type { Criterion, Template } from '../scorecards';

interface Editing {
  id: string | null;
  name: string;
  criteria: Criterion[];
  archived: boolean;
}

const BLANK: Editing = { id: null, name: '', criteria: [{ name: '', guidance: '' }], archived: false };

function TemplateForm({ editing, onSaved, onCancel }: {
  editing: Editing;
  onSaved: (t: Template) => void;
  onCancel: () => void;
}) {
  const [draft, setDraft] = useState(editing);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const setCriterion = (i: number, change: Partial<Criterion>) =>
    setDraft({ ...draft, criteria: draft.criteria.map((c, j) => (j === i ? { ...c, ...change } : c)) });
  const save = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body = { name: draft.name, criteria: draft.criteria, archived: draft.archived };
    try {
      onSaved(
        draft.id
          ? await api<Template>('PUT', `/api/scorecard-templates/${encodeURIComponent(draft.id)}`, body)
          : await api<Template>('POST', '/api/scorecard-templates', body),
      );
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card" aria-labelledby="template-form-heading" onSubmit={(e) => void save(e)}>
      <h2 id="template-form-heading">{draft.id ? `Edit “${editing.name}”` : 'New template'}</h2>
      <div class="field">
        <label for="template-name">Name</label>
        <input id="template-name" required maxLength={100} value={draft.name}
          onInput={(e) => setDraft({ ...draft, name: (e.currentTarget as HTMLInputElement).value })} />
      </div>
      {draft.criteria.map((c, i) => (
        <fieldset key={i} class="criterion">
          <legend>Criterion {i + 1}</legend>
          <label for={`criterion-name-${i}`}>Name of criterion {i + 1}</label>
          <input id={`criterion-name-${i}`} required maxLength={100} value={c.name}
            onInput={(e) => setCriterion(i, { name: (e.currentTarget as HTMLInputElement).value })} />
          <label for={`criterion-guidance-${i}`}>Guidance for criterion {i + 1} (what 1 to 4 mean)</label>
          <textarea id={`criterion-guidance-${i}`} rows={2} maxLength={2000} value={c.guidance}
            onInput={(e) => setCriterion(i, { guidance: (e.currentTarget as HTMLTextAreaElement).value })} />
          {draft.criteria.length > 1 && (
            <button type="button" class="secondary small" aria-label={`Remove criterion ${i + 1}`}
              onClick={() => setDraft({ ...draft, criteria: draft.criteria.filter((_, j) => j !== i) })}>
              Remove
            </button>
          )}
        </fieldset>
      ))}
      {draft.criteria.length < 20 && (
        <button type="button" class="secondary"
          onClick={() => setDraft({ ...draft, criteria: [...draft.criteria, { name: '', guidance: '' }] })}>
          Add criterion
        </button>
      )}
      {draft.id && (
        <div class="field checkbox">
          <label>
            <input type="checkbox" checked={draft.archived}
              onChange={(e) => setDraft({ ...draft, archived: (e.currentTarget as HTMLInputElement).checked })} />
            Retired: no longer offered for new scorecards
          </label>
        </div>
      )}
      <ErrorAlert error={error} />
      <div class="actions">
        <button type="submit" disabled={busy}>
          Save template
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function TemplatesContent() {
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const [editing, setEditing] = useState<Editing | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [status, setStatus] = useState('');
  useEffect(() => {
    api<Template[]>('GET', '/api/scorecard-templates').then(setTemplates, setError);
  }, []);
  if (!templates && isUnavailable(error)) {
    return (
      <Unavailable title="This page isn't available to you"
        audience="Only administrators manage scorecard templates." />
    );
  }
  return (
    <section>
      <div class="page-head">
        <PageTitle>Scorecard templates</PageTitle>
        {!editing && (
          <button type="button" onClick={() => setEditing(BLANK)}>
            New template
          </button>
        )}
      </div>
      <ErrorAlert error={error} />
      <p aria-live="polite" class="muted">
        {status}
      </p>
      {editing && (
        <TemplateForm key={editing.id ?? 'new'} editing={editing} onCancel={() => setEditing(null)}
          onSaved={(saved) => {
            setTemplates((current) => [saved, ...(current ?? []).filter((t) => t.id !== saved.id)]);
            setStatus(`Saved “${saved.name}”.`);
            setEditing(null);
          }} />
      )}
      {!templates && !error && <Loading what="templates" />}
      {templates && (
        <ul class="templates">
          {templates.map((t) => (
            <li key={t.id} class="card">
              <h2>
                {t.name} {t.archived && <span class="badge">Retired</span>}
              </h2>
              <ol>
                {t.criteria.map((c) => (
                  <li key={c.name}>
                    <strong>{c.name}</strong>
                    {c.guidance && <span class="muted"> — {c.guidance}</span>}
                  </li>
                ))}
              </ol>
              <button type="button" class="secondary" aria-label={`Edit ${t.name}`}
                onClick={() => setEditing({ id: t.id, name: t.name, criteria: t.criteria, archived: t.archived })}>
                Edit
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function ScorecardTemplates() {
  return (
    <RequireSession>
      <TemplatesContent />
    </RequireSession>
  );
}
