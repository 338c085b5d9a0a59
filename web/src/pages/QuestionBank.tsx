// The question bank (interviewers and admins): find questions by words and tag, write new ones
// and edit them: title, prompt (Markdown), difficulty, tags, starter code per language and hidden
// tests (input and the output that passes).

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { RequireSession } from '../app';
import { ErrorAlert, PageTitle } from '../components/ui';
import type { HiddenTest, Question } from '../components/room/Questions';

const LANGUAGES = [
  ['python', 'Python'],
  ['javascript', 'JavaScript'],
  ['typescript', 'TypeScript'],
  ['java', 'Java'],
  ['cpp', 'C++'],
  ['go', 'Go'],
  ['rust', 'Rust'],
] as const;

interface Draft {
  id?: string;
  title: string;
  prompt: string;
  difficulty: Question['difficulty'];
  tags: string;
  starter_code: Record<string, string>;
  hidden_tests: HiddenTest[];
}

const EMPTY: Draft = { title: '', prompt: '', difficulty: 'medium', tags: '', starter_code: {}, hidden_tests: [] };

function draftOf(q: Question): Draft {
  return {
    id: q.id,
    title: q.title,
    prompt: q.prompt,
    difficulty: q.difficulty,
    tags: q.tags.join(', '),
    starter_code: { ...q.starter_code },
    hidden_tests: q.hidden_tests ? q.hidden_tests.map((t) => ({ ...t })) : [],
  };
}

function QuestionBankContent() {
  const [questions, setQuestions] = useState<Question[]>([]);
  const [words, setWords] = useState('');
  const [tag, setTag] = useState('');
  const [draft, setDraft] = useState<Draft | null>(null);
  const [language, setLanguage] = useState('python');
  const [error, setError] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);

  const search = () => {
    const params = new URLSearchParams();
    if (words.trim()) params.set('q', words.trim());
    if (tag.trim()) params.set('tag', tag.trim());
    api<Question[]>('GET', `/api/questions?${params}`).then(setQuestions, setError);
  };
  useEffect(search, []);

  const save = async (e: Event) => {
    e.preventDefault();
    if (!draft) return;
    setSaving(true);
    setError(null);
    const body = {
      title: draft.title,
      prompt: draft.prompt,
      difficulty: draft.difficulty,
      tags: draft.tags.split(',').map((t) => t.trim()).filter(Boolean),
      starter_code: Object.fromEntries(Object.entries(draft.starter_code).filter(([, code]) => code.trim() !== '')),
      hidden_tests: draft.hidden_tests,
    };
    try {
      await (draft.id ? api('PUT', `/api/questions/${encodeURIComponent(draft.id)}`, body) : api('POST', '/api/questions', body));
      setDraft(null);
      search();
    } catch (err) {
      setError(err);
    } finally {
      setSaving(false);
    }
  };

  const set = (change: Partial<Draft>) => setDraft((d) => (d ? { ...d, ...change } : d));
  const setTest = (index: number, change: Partial<HiddenTest>) =>
    setDraft((d) => d && { ...d, hidden_tests: d.hidden_tests.map((t, i) => (i === index ? { ...t, ...change } : t)) });

  return (
    <section class="card">
      <PageTitle>Question bank</PageTitle>
      <ErrorAlert error={error} />
      <form class="actions" role="search" onSubmit={(e) => { e.preventDefault(); search(); }}>
        <label>
          Words <input value={words} onInput={(e) => setWords((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label>
          Tag <input value={tag} onInput={(e) => setTag((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <button type="submit" class="secondary">Search</button>
        <button type="button" onClick={() => setDraft({ ...EMPTY })}>New question</button>
      </form>
      {draft && (
        <form class="question-form" onSubmit={save} aria-label={draft.id ? 'Edit question' : 'New question'}>
          <label>
            Title <input required maxLength={200} value={draft.title} onInput={(e) => set({ title: (e.currentTarget as HTMLInputElement).value })} />
          </label>
          <label>
            Prompt (Markdown)
            <textarea rows={6} value={draft.prompt} onInput={(e) => set({ prompt: (e.currentTarget as HTMLTextAreaElement).value })} />
          </label>
          <label>
            Difficulty{' '}
            <select value={draft.difficulty} onChange={(e) => set({ difficulty: (e.currentTarget as HTMLSelectElement).value as Draft['difficulty'] })}>
              <option value="easy">Easy</option>
              <option value="medium">Medium</option>
              <option value="hard">Hard</option>
            </select>
          </label>
          <label>
            Tags (comma-separated) <input value={draft.tags} onInput={(e) => set({ tags: (e.currentTarget as HTMLInputElement).value })} />
          </label>
          <fieldset>
            <legend>Starter code</legend>
            <label>
              Language{' '}
              <select value={language} onChange={(e) => setLanguage((e.currentTarget as HTMLSelectElement).value)}>
                {LANGUAGES.map(([id, name]) => (
                  <option key={id} value={id}>{name}{draft.starter_code[id] ? ' ✓' : ''}</option>
                ))}
              </select>
            </label>
            <label>
              Starter code ({LANGUAGES.find(([id]) => id === language)?.[1]})
              <textarea class="code" rows={6} value={draft.starter_code[language] ?? ''}
                onInput={(e) => set({ starter_code: { ...draft.starter_code, [language]: (e.currentTarget as HTMLTextAreaElement).value } })} />
            </label>
          </fieldset>
          <fieldset>
            <legend>Hidden tests (the candidate never sees these)</legend>
            {draft.hidden_tests.map((t, i) => (
              <div class="hidden-test" key={i}>
                <label>
                  Test {i + 1} input
                  <textarea class="code" rows={2} value={t.stdin} onInput={(e) => setTest(i, { stdin: (e.currentTarget as HTMLTextAreaElement).value })} />
                </label>
                <label>
                  Test {i + 1} expected output
                  <textarea class="code" rows={2} value={t.expected_stdout}
                    onInput={(e) => setTest(i, { expected_stdout: (e.currentTarget as HTMLTextAreaElement).value })} />
                </label>
                <button type="button" class="secondary small"
                  onClick={() => set({ hidden_tests: draft.hidden_tests.filter((_, j) => j !== i) })}>
                  Remove test {i + 1}
                </button>
              </div>
            ))}
            <button type="button" class="secondary small"
              onClick={() => set({ hidden_tests: [...draft.hidden_tests, { stdin: '', expected_stdout: '' }] })}>
              Add a hidden test
            </button>
          </fieldset>
          <div class="actions">
            <button type="submit" disabled={saving}>{draft.id ? 'Save question' : 'Add question'}</button>
            <button type="button" class="secondary" onClick={() => setDraft(null)}>Cancel</button>
          </div>
        </form>
      )}
      <ul class="question-bank">
        {questions.map((q) => (
          <li key={q.id}>
            <strong>{q.title}</strong> <span class="badge">{q.difficulty}</span>
            {q.tags.map((t) => <span key={t} class="badge muted">{t}</span>)}{' '}
            <span class="muted">{Object.keys(q.starter_code).length} starter languages · {q.hidden_test_count} hidden tests</span>{' '}
            <button type="button" class="secondary small" aria-label={`Edit ${q.title}`} onClick={() => setDraft(draftOf(q))}>
              Edit
            </button>
          </li>
        ))}
      </ul>
      {questions.length === 0 && <p class="muted">No questions found.</p>}
    </section>
  );
}

export function QuestionBank() {
  return (
    <RequireSession>
      <QuestionBankContent />
    </RequireSession>
  );
}
