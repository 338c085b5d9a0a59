import { describe, expect, it } from 'vitest';
import { keptStatements } from '../src/pages/JoinInvite';

describe('the invite page', () => {
  it('says what is kept and for how long before the candidate goes in', () => {
    const lines = keptStatements({
      recorded_automatically: true,
      proctored: true,
      recording_days: 90,
      proctoring_days: 30,
      code_days: 180,
    });
    expect(lines[0]).toContain('code');
    expect(lines[0]).toContain('for 180 days after the interview, then deleted');
    expect(lines[1]).toMatch(/^This interview is set to be recorded: you will be asked first/);
    expect(lines[1]).toContain('chat, is kept for 90 days');
    expect(lines[2]).toMatch(/^This interview is proctored/);
    expect(lines[2]).toContain('for 30 days');
    expect(lines.at(-1)).toContain('deletion');
  });

  it('names what is kept without a limit, and proctoring that may be turned on', () => {
    const lines = keptStatements({
      recorded_automatically: false,
      proctored: false,
      recording_days: 0,
      proctoring_days: 30,
      code_days: 0,
    });
    expect(lines[0]).toContain('until an administrator deletes it');
    expect(lines[1]).toMatch(/^The interviewers may record this interview/);
    expect(lines[2]).toMatch(/^If the interviewers turn on proctoring, you will be asked first/);
    expect(lines[2]).toContain('for 30 days');
    expect(lines).toHaveLength(4);
  });
});
