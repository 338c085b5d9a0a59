// Shapes of the notes and scorecard API (see /api/openapi.json), and what the pages say about
// them.

export interface Criterion {
  name: string;
  guidance: string;
}

export interface Template {
  id: string;
  name: string;
  criteria: Criterion[];
  archived: boolean;
  updated_at: number;
}

export type Recommendation = 'strong_no' | 'no' | 'yes' | 'strong_yes';

export const RECOMMENDATIONS: { value: Recommendation; label: string }[] = [
  { value: 'strong_no', label: 'Strong no' },
  { value: 'no', label: 'No' },
  { value: 'yes', label: 'Yes' },
  { value: 'strong_yes', label: 'Strong yes' },
];

export function recommendationLabel(value: string): string {
  return RECOMMENDATIONS.find((r) => r.value === value)?.label ?? value;
}

export interface RatedCriterion extends Criterion {
  score: number;
  comment: string;
}

export interface Scorecard {
  id: string;
  participant_id: string;
  author: string;
  template_id: string;
  template_name: string;
  ratings: RatedCriterion[];
  recommendation: Recommendation;
  summary: string;
  submitted_at: string;
  updated_at: string;
}

export interface Scorecards {
  scorecards: Scorecard[];
  expected: { participant_id: string; display_name: string; submitted: boolean }[];
  can_submit: boolean;
  my_participant_id: string | null;
  open: boolean;
}

export interface ScorecardProgress {
  submitted: number;
  expected: number;
  missing: string[];
  mine_missing: boolean;
}

export interface Notes {
  body: string;
  updated_at: number | null;
}

/** A dashboard line's words for how an interview's scorecards stand, or null when complete. */
export function progressText(progress: ScorecardProgress): string | null {
  if (progress.expected === 0 || progress.missing.length === 0) return null;
  const others = progress.missing.length - (progress.mine_missing ? 1 : 0);
  if (progress.mine_missing && others === 0) return 'Your scorecard is missing';
  if (progress.mine_missing) return `Your scorecard and ${others} more missing`;
  return `Scorecards missing: ${progress.missing.join(', ')}`;
}

/** A scorecard being filled in: one score (or none yet) and comment per criterion. */
export interface Draft {
  templateId: string;
  scores: (number | null)[];
  comments: string[];
  recommendation: Recommendation | null;
  summary: string;
}

export function emptyDraft(template: Template, summary = ''): Draft {
  return {
    templateId: template.id,
    scores: template.criteria.map(() => null),
    comments: template.criteria.map(() => ''),
    recommendation: null,
    summary,
  };
}

/**
 * The draft of an already submitted card, to revise it against its own template; null when the
 * template's criteria changed since (the old scores would land on other criteria).
 */
export function draftFrom(card: Scorecard, template: Template): Draft | null {
  const same =
    template.id === card.template_id &&
    template.criteria.length === card.ratings.length &&
    template.criteria.every((c, i) => c.name === card.ratings[i]?.name);
  if (!same) return null;
  return {
    templateId: template.id,
    scores: card.ratings.map((r) => r.score),
    comments: card.ratings.map((r) => r.comment),
    recommendation: card.recommendation,
    summary: card.summary,
  };
}

/** What is still to fill in before the draft can be submitted (empty when complete). */
export function missingInDraft(draft: Draft, template: Template): string[] {
  const missing = template.criteria.filter((_, i) => draft.scores[i] == null).map((c) => c.name);
  if (!draft.recommendation) missing.push('the recommendation');
  return missing;
}

/** The body of `PUT /api/interviews/{id}/scorecard`. */
export function submission(draft: Draft) {
  return {
    template_id: draft.templateId,
    ratings: draft.scores.map((score, i) => ({ score, comment: draft.comments[i] ?? '' })),
    recommendation: draft.recommendation,
    summary: draft.summary,
  };
}
