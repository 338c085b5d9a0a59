// Shapes of the API's interview responses (see /api/openapi.json).

import type { InterviewRole } from './api';
import type { ScorecardProgress } from './scorecards';

export type InviteStatus = 'pending' | 'used' | 'expired' | 'revoked';

export interface Participant {
  id: string;
  display_name: string;
  role: InterviewRole;
  email: string | null;
  invite: InviteStatus | null;
}

export interface Interview {
  id: string;
  title: string;
  scheduled_start: string;
  ends_at: string;
  duration_minutes: number;
  time_zone: string;
  status: 'scheduled' | 'cancelled';
  my_role: InterviewRole | null;
  can_manage: boolean;
  can_join: boolean;
  participants: Participant[];
}

export type InterviewSummary = Omit<Interview, 'my_role' | 'can_manage' | 'can_join' | 'participants'> & {
  scorecards?: ScorecardProgress;
};

export interface InviteLink {
  participant_id: string;
  email: string;
  url: string;
  expires_at: string;
}

export interface JoinResponse {
  token: string;
  expires_in: number;
  room: string;
  identity: string;
  role: InterviewRole;
  grants: Record<string, unknown>;
}
