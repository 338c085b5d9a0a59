// The interview page's scorecards: whose are in and whose are missing, each submitted card, and
// for the interview's interviewers their own card to fill in (or revise) from a template, with
// their private notes at hand. Shown only to those the server lets read scorecards.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import {
  type Draft,
  type Notes,
  RECOMMENDATIONS,
  type Scorecard,
  type Scorecards as ScorecardsView,
  type Template,
  draftFrom,
  emptyDraft,
  missingInDraft,
  recommendationLabel,
  submission,
} from '../scorecards';
import { ErrorAlert } from './ui';

function CardView({ card }: { card: Scorecard }) {
  return (
    <article class="scorecard" aria-label={`${card.author}'s scorecard`}>
      <h3>
        {card.author} <span class={`badge recommendation-${card.recommendation}`}>{recommendationLabel(card.recommendation)}</span>
      </h3>
      <p class="muted">
        {card.template_name} · submitted {new Date(card.submitted_at).toLocaleString()}
        {card.updated_at !== card.submitted_at && ` · revised ${new Date(card.updated_at).toLocaleString()}`}
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">Criterion</th>
            <th scope="col">Score</th>
            <th scope="col">Comment</th>
          </tr>
        </thead>
        <tbody>
          {card.ratings.map((r) => (
            <tr key={r.name}>
              <th scope="row">{r.name}</th>
              <td>{r.score} of 4</td>
              <td>{r.comment}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {card.summary && <p class="summary">{card.summary}</p>}
    </article>
  );
}

function ScorecardForm({ interviewId, mine, onSubmitted }: {
  interviewId: string;
  mine: Scorecard | undefined;
  onSubmitted: (view: ScorecardsView) => void;
}) {
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [notes, setNotes] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    Promise.all([
      api<Template[]>('GET', '/api/scorecard-templates'),
      // A card may start from the author's private notes; a read that fails once (a moment of
      // network trouble, a token being refreshed) is tried again before the offer is dropped.
      readMyNotes(interviewId)
        .catch(() => new Promise<void>((done) => setTimeout(done, 1_000)).then(() => readMyNotes(interviewId)))
        .catch(() => null),
    ]).then(([all, myNotes]) => {
      setTemplates(all);
      setNotes(myNotes?.body ?? '');
      const offered = all.filter((t) => !t.archived);
      // A card being revised starts from its scores while its template still has the same
      // criteria; otherwise it is filled afresh (keeping the summary).
      const own = mine && all.find((t) => t.id === mine.template_id);
      const revised = mine && own ? draftFrom(mine, own) : null;
      if (revised) setDraft(revised);
      else if (offered[0]) setDraft(emptyDraft(offered[0], mine?.summary ?? ''));
    }, setError);
  }, [interviewId, mine?.id]);
  if (!templates || !draft) return <ErrorAlert error={error} />;
  const template = templates.find((t) => t.id === draft.templateId);
  if (!template) return null;
  const offered = templates.filter((t) => !t.archived || t.id === draft.templateId);
  const set = (change: Partial<Draft>) => setDraft({ ...draft, ...change });
  const submit = async (event: Event) => {
    event.preventDefault();
    const missing = missingInDraft(draft, template);
    if (missing.length > 0) {
      setProblem(`Still to score: ${missing.join(', ')}.`);
      return;
    }
    setProblem(null);
    setBusy(true);
    setError(null);
    try {
      onSubmitted(
        await api<ScorecardsView>('PUT', `/api/interviews/${encodeURIComponent(interviewId)}/scorecard`, submission(draft)),
      );
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="scorecard-form" aria-labelledby="my-scorecard-heading" onSubmit={(e) => void submit(e)}>
      <h3 id="my-scorecard-heading">{mine ? 'Revise your scorecard' : 'Your scorecard'}</h3>
      <div class="field">
        <label for="scorecard-template">Template</label>
        <select id="scorecard-template" value={draft.templateId}
          onChange={(e) => {
            const picked = templates.find((t) => t.id === (e.currentTarget as HTMLSelectElement).value);
            if (picked) setDraft(emptyDraft(picked, draft.summary));
          }}>
          {offered.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </select>
      </div>
      {template.criteria.map((criterion, i) => (
        <fieldset key={`${template.id}-${i}`} class="criterion">
          <legend>{criterion.name}</legend>
          {criterion.guidance && <p class="hint">{criterion.guidance}</p>}
          <div class="scores" role="radiogroup" aria-label={`${criterion.name}: score`}>
            {[1, 2, 3, 4].map((score) => (
              <label key={score}>
                <input type="radio" name={`score-${i}`} value={score} checked={draft.scores[i] === score}
                  onChange={() => set({ scores: draft.scores.map((s, j) => (j === i ? score : s)) })} />
                {score}
              </label>
            ))}
          </div>
          <label for={`comment-${i}`}>Comment on {criterion.name}</label>
          <textarea id={`comment-${i}`} rows={2} maxLength={5000} value={draft.comments[i]}
            onInput={(e) =>
              set({ comments: draft.comments.map((c, j) => (j === i ? (e.currentTarget as HTMLTextAreaElement).value : c)) })
            } />
        </fieldset>
      ))}
      <fieldset class="criterion">
        <legend>Recommendation</legend>
        <div class="scores">
          {RECOMMENDATIONS.map((r) => (
            <label key={r.value}>
              <input type="radio" name="recommendation" value={r.value} checked={draft.recommendation === r.value}
                onChange={() => set({ recommendation: r.value })} />
              {r.label}
            </label>
          ))}
        </div>
      </fieldset>
      <div class="field">
        <label for="scorecard-summary">Summary</label>
        <textarea id="scorecard-summary" rows={4} maxLength={20_000} value={draft.summary}
          onInput={(e) => set({ summary: (e.currentTarget as HTMLTextAreaElement).value })} />
        {notes && !draft.summary && (
          <button type="button" class="secondary small" onClick={() => set({ summary: notes })}>
            Start from my private notes
          </button>
        )}
      </div>
      {problem && (
        <p class="alert" role="alert">
          {problem}
        </p>
      )}
      <ErrorAlert error={error} />
      <button type="submit" disabled={busy}>
        {mine ? 'Save changes' : 'Submit scorecard'}
      </button>
    </form>
  );
}

/** The signed-in author's private notes of an interview. */
function readMyNotes(interviewId: string): Promise<Notes> {
  return api<Notes>('GET', `/api/interviews/${encodeURIComponent(interviewId)}/notes`);
}

export function Scorecards({ interviewId }: { interviewId: string }) {
  const [view, setView] = useState<ScorecardsView | null>(null);
  const [done, setDone] = useState(false);
  const [revising, setRevising] = useState(false);
  useEffect(() => {
    api<ScorecardsView>('GET', `/api/interviews/${encodeURIComponent(interviewId)}/scorecards`).then(setView, () =>
      setView(null),
    );
  }, [interviewId]);
  if (!view) return null;
  const mine = view.scorecards.find((c) => c.participant_id === view.my_participant_id);
  const missing = view.expected.filter((e) => !e.submitted);
  return (
    <section aria-labelledby="scorecards-heading">
      <h2 id="scorecards-heading">Scorecards</h2>
      <p role="status">
        {view.expected.length === 0
          ? 'This interview has no interviewers to score it.'
          : missing.length === 0
            ? `All ${view.expected.length} scorecards are in.`
            : `${view.expected.length - missing.length} of ${view.expected.length} in; missing: ${missing.map((m) => m.display_name).join(', ')}.`}
      </p>
      {view.scorecards.map((card) => (
        <CardView key={card.id} card={card} />
      ))}
      {view.can_submit && !view.open && <p class="muted">Scorecards are filled in once the interview has begun.</p>}
      {done && (
        <p class="notice" role="status">
          Your scorecard is saved.
        </p>
      )}
      {view.can_submit && view.open && mine && !revising && (
        <button type="button" class="secondary" onClick={() => setRevising(true)}>
          Revise your scorecard
        </button>
      )}
      {view.can_submit && view.open && (!mine || revising) && (
        <ScorecardForm interviewId={interviewId} mine={mine}
          onSubmitted={(next) => {
            setView(next);
            setDone(true);
            setRevising(false);
          }} />
      )}
    </section>
  );
}
