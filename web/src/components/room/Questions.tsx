// The interview's questions in the room. The candidate sees the ones revealed to them. An
// interviewer sees them all, adds one from the bank, reveals one (loading its starter code into
// everyone's editor, after asking when the editor is not empty), and runs its hidden tests
// against the current code: a pass/fail table only interviewers see.

import { Markdown } from '../Markdown';
import { useEffect, useState } from 'preact/hooks';
import { api } from '../../api';
import { ErrorAlert } from '../ui';

export interface HiddenTest {
  stdin: string;
  expected_stdout: string;
}

export interface Question {
  id: string;
  title: string;
  prompt: string;
  difficulty: 'easy' | 'medium' | 'hard';
  tags: string[];
  starter_code: Record<string, string>;
  hidden_tests?: HiddenTest[];
  hidden_test_count: number;
  revealed_at_ms?: number;
  updated_at: number;
}

interface TestResult {
  index: number;
  passed: boolean;
  verdict: string | null;
  stdin: string;
  expected_stdout: string;
  stdout: string;
  stderr: string;
  duration_ms: number;
  error: string | null;
}

interface TestReport {
  language: string;
  results: TestResult[];
  passed: number;
}

export function Questions({ interviewId, manage, editorText, revealedTick }: {
  interviewId: string;
  manage: boolean;
  /** The editor's text now (to ask before replacing it). */
  editorText: () => string;
  /** Changes when someone revealed a question. */
  revealedTick: number;
}) {
  const base = `/api/interviews/${encodeURIComponent(interviewId)}/questions`;
  const [questions, setQuestions] = useState<Question[]>([]);
  const [bank, setBank] = useState<Question[]>([]);
  const [pick, setPick] = useState('');
  const [reports, setReports] = useState<Record<string, TestReport>>({});
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = () => api<Question[]>('GET', base).then(setQuestions, setError);
  useEffect(() => {
    void load();
  }, [interviewId, revealedTick]);
  useEffect(() => {
    if (manage) api<Question[]>('GET', '/api/questions').then(setBank, () => undefined);
  }, [manage]);

  const act = async (key: string, work: () => Promise<void>) => {
    setBusy(key);
    setError(null);
    try {
      await work();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };

  const attach = () =>
    act('attach', async () => {
      setQuestions(await api<Question[]>('POST', base, { question_id: pick }));
      setPick('');
    });

  const reveal = (question: Question, loadStarter: boolean) =>
    act(`reveal-${question.id}`, async () => {
      if (loadStarter && editorText().trim() !== ''
        && !window.confirm(`Replace the code in the editor with the starter code of "${question.title}" for everyone?`)) {
        return;
      }
      await api('POST', `${base}/${encodeURIComponent(question.id)}/reveal`, { load_starter_code: loadStarter });
      await load();
    });

  const test = (question: Question) =>
    act(`test-${question.id}`, async () => {
      const report = await api<TestReport>('POST', `${base}/${encodeURIComponent(question.id)}/tests`, {});
      setReports((current) => ({ ...current, [question.id]: report }));
    });

  const unattached = bank.filter((q) => !questions.some((a) => a.id === q.id));
  if (!manage && questions.length === 0) return null;
  return (
    <section class="questions" aria-labelledby="questions-heading">
      <h3 id="questions-heading">Questions</h3>
      <ErrorAlert error={error} />
      {questions.length === 0 && <p class="muted">No questions attached yet.</p>}
      <ol class="question-list">
        {questions.map((q) => (
          <li key={q.id} data-question={q.id}>
            <details open>
              <summary>
                <strong>{q.title}</strong> <span class="badge">{q.difficulty}</span>
                {q.tags.map((t) => (
                  <span key={t} class="badge muted">{t}</span>
                ))}
                {manage && (q.revealed_at_ms ? <span class="badge">Revealed</span> : <span class="badge muted">Hidden from the candidate</span>)}
              </summary>
              <Markdown class="prompt" text={q.prompt} />
              {manage && (
                <div class="actions">
                  {!q.revealed_at_ms && (
                    <button type="button" class="secondary small" disabled={busy !== null} onClick={() => void reveal(q, false)}>
                      Reveal
                    </button>
                  )}
                  {Object.keys(q.starter_code).length > 0 && (
                    <button type="button" class="secondary small" disabled={busy !== null} onClick={() => void reveal(q, true)}>
                      {q.revealed_at_ms ? 'Load starter code' : 'Reveal and load starter code'}
                    </button>
                  )}
                  {q.hidden_test_count > 0 && (
                    <button type="button" class="secondary small" disabled={busy !== null} onClick={() => void test(q)}>
                      Run {q.hidden_test_count} hidden tests
                    </button>
                  )}
                </div>
              )}
              {reports[q.id] && <Report report={reports[q.id]!} />}
            </details>
          </li>
        ))}
      </ol>
      {manage && unattached.length > 0 && (
        <div class="actions">
          <label>
            Add from the bank{' '}
            <select value={pick} onChange={(e) => setPick((e.currentTarget as HTMLSelectElement).value)}>
              <option value="">Choose a question…</option>
              {unattached.map((q) => (
                <option key={q.id} value={q.id}>
                  {q.title} ({q.difficulty})
                </option>
              ))}
            </select>
          </label>
          <button type="button" class="secondary small" disabled={!pick || busy !== null} onClick={() => void attach()}>
            Add
          </button>
        </div>
      )}
    </section>
  );
}

function Report({ report }: { report: TestReport }) {
  return (
    <table class="test-report" aria-label={`Hidden tests: ${report.passed} of ${report.results.length} passed`}>
      <caption>
        Hidden tests ({report.language}): {report.passed} of {report.results.length} passed
      </caption>
      <thead>
        <tr>
          <th scope="col">#</th>
          <th scope="col">Result</th>
          <th scope="col">Input</th>
          <th scope="col">Expected</th>
          <th scope="col">Printed</th>
        </tr>
      </thead>
      <tbody>
        {report.results.map((r) => (
          <tr key={r.index} data-passed={String(r.passed)}>
            <td>{r.index + 1}</td>
            <td>{r.passed ? 'Passed' : `Failed${r.verdict && r.verdict !== 'ok' ? ` (${r.verdict.replaceAll('_', ' ')})` : ''}${r.error ? `: ${r.error}` : ''}`}</td>
            <td><pre>{r.stdin}</pre></td>
            <td><pre>{r.expected_stdout}</pre></td>
            <td><pre>{r.stdout}{r.stderr ? `\n${r.stderr}` : ''}</pre></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
