import { render } from 'preact';
import { afterEach, describe, expect, it } from 'vitest';
import { type LiveParticipant, RoomsTable, participantState } from '../src/pages/AdminRooms';

afterEach(() => {
  document.body.innerHTML = '';
});

const person = (overrides: Partial<LiveParticipant>): LiveParticipant => ({
  identity: 'p-1',
  name: 'Casey',
  role: 'candidate',
  reconnecting: false,
  connection: null,
  phone_of: null,
  ...overrides,
});

describe('the live rooms', () => {
  it('say in words how each person is connected', () => {
    expect(participantState(person({}))).toBe('Connected');
    expect(participantState(person({ connection: 'poor' }))).toBe('Connected, connection poor');
    expect(participantState(person({ reconnecting: true, connection: 'good' }))).toBe('Reconnecting');
  });

  it('list each room with its people, a phone named as one, and a close button per room', () => {
    const root = document.createElement('div');
    document.body.appendChild(root);
    const closed: string[] = [];
    render(
      <RoomsTable
        live={{
          rooms: [
            {
              interview_id: 'i-1',
              title: 'Systems round',
              node: null,
              participants: [person({}), person({ identity: 'phone-p-1', phone_of: 'p-1', connection: 'good' })],
              hidden: 1,
              tracks: 4,
            },
          ],
          unanswered_nodes: ['eu-2'],
        }}
        onClose={(room) => closed.push(room.interview_id)}
      />,
      root,
    );
    expect(root.textContent).toContain('1 room is up.');
    expect(root.textContent).toContain('Not listed: the rooms of eu-2');
    expect(root.textContent).toContain('Casey (phone), candidate: Connected, connection good');
    root.querySelector<HTMLButtonElement>('button[aria-label="Close the room of Systems round"]')?.click();
    expect(closed).toEqual(['i-1']);
  });
});

describe('a candidate erasure', async () => {
  const { erasedText } = await import('../src/pages/AdminCandidates');
  it('says what went, in words', () => {
    expect(
      erasedText({ interviews: 1, recordings: 2, proctoring_events: 1, scorecards_emptied: 0, account_deleted: true }),
    ).toBe(
      'Erased: 1 interview cleared, 2 recordings deleted, 1 proctoring event deleted, 0 scorecards kept with ratings only, the candidate account deleted.',
    );
  });
});

describe('the audit log filter', async () => {
  const { auditQuery } = await import('../src/pages/AdminAudit');
  it('asks only for what was filled in', () => {
    expect(auditQuery({ action: '', actor: '', target: '' })).toBe('');
    expect(auditQuery({ action: ' user.deactivated ', actor: '', target: 'u 1' })).toBe(
      '?action=user.deactivated&target=u+1',
    );
  });
});
