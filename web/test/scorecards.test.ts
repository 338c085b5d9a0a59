import { describe, expect, it } from 'vitest';
import { draftFrom, emptyDraft, missingInDraft, progressText, submission, type Scorecard, type Template } from '../src/scorecards';

const template: Template = {
  id: 't',
  name: 'Round',
  criteria: [
    { name: 'Design', guidance: '' },
    { name: 'Coding', guidance: '' },
  ],
  archived: false,
  updated_at: 0,
};

describe('progressText', () => {
  it('says nothing once every scorecard is in', () => {
    expect(progressText({ submitted: 2, expected: 2, missing: [], mine_missing: false })).toBeNull();
  });
  it('puts the reader\'s own missing card first', () => {
    expect(progressText({ submitted: 0, expected: 1, missing: ['Ivy'], mine_missing: true })).toBe('Your scorecard is missing');
    expect(progressText({ submitted: 0, expected: 3, missing: ['Ivy', 'Ian', 'Ola'], mine_missing: true })).toBe(
      'Your scorecard and 2 more missing',
    );
  });
  it('names the others whose card is missing', () => {
    expect(progressText({ submitted: 1, expected: 2, missing: ['Ian'], mine_missing: false })).toBe('Scorecards missing: Ian');
  });
});

describe('a scorecard draft', () => {
  it('lists what is still to score, and submits one rating per criterion', () => {
    const draft = emptyDraft(template, 'from notes');
    expect(missingInDraft(draft, template)).toEqual(['Design', 'Coding', 'the recommendation']);
    const done = { ...draft, scores: [3, 4], comments: ['ok', ''], recommendation: 'yes' as const };
    expect(missingInDraft(done, template)).toEqual([]);
    expect(submission(done)).toEqual({
      template_id: 't',
      ratings: [
        { score: 3, comment: 'ok' },
        { score: 4, comment: '' },
      ],
      recommendation: 'yes',
      summary: 'from notes',
    });
  });
});

describe('revising a scorecard', () => {
  const card: Scorecard = {
    id: 'c',
    participant_id: 'p',
    author: 'Ivy',
    template_id: 't',
    template_name: 'Round',
    ratings: [
      { name: 'Design', guidance: '', score: 2, comment: 'ok' },
      { name: 'Coding', guidance: '', score: 4, comment: '' },
    ],
    recommendation: 'yes',
    summary: 'kept',
    submitted_at: '',
    updated_at: '',
  };
  it('starts from the submitted scores while the template is unchanged', () => {
    expect(draftFrom(card, template)?.scores).toEqual([2, 4]);
  });
  it('refuses to move scores onto criteria that changed or another template', () => {
    const reordered = { ...template, criteria: [...template.criteria].reverse() };
    expect(draftFrom(card, reordered)).toBeNull();
    expect(draftFrom(card, { ...template, id: 'other' })).toBeNull();
  });
});
