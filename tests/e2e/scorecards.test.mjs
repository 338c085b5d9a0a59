// Notes and scorecards in real browsers: an interviewer keeps private notes in the room (the
// candidate's room has none); after the interview has begun
// the interviewer fills in a scorecard from the template, starting from her notes; the assigned
// reviewer sees on the dashboard whose scorecard is missing and reads the submitted one; an
// admin adds a template, which the other interviewer is then offered.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PASSWORD, artifacts, launchBrowser, startServer, steps, unlabelledControls } from './harness.mjs';

let server;

before(async () => {
  server = await startServer();
  server.createUser('ivy@example.com', 'Ivy Interviewer', 'interviewer');
  server.createUser('ian@example.com', 'Ian Interviewer', 'interviewer');
  server.createUser('rita@example.com', 'Rita Reviewer', 'reviewer');
  server.createUser('ada@example.com', 'Ada Admin', 'admin');
}, { timeout: 60_000 });

after(async () => {
  await server?.stop();
}, { timeout: 60_000 });

test('private notes in the room become a scorecard the reviewer reads', { timeout: 240_000 }, async (t) => {
  const step = steps(t);
  const session = await server.api('POST', '/api/auth/login', { email: 'ivy@example.com', password: PASSWORD });
  // Begun five minutes ago: scorecards are taken once an interview has begun.
  const created = await server.api('POST', '/api/interviews', {
    title: 'Scored round',
    scheduled_start: new Date(Date.now() - 5 * 60 * 1000).toISOString(),
    duration_minutes: 60,
    time_zone: 'UTC',
    participants: [
      { email: 'cas@example.com', display_name: 'Casey Candidate', role: 'candidate' },
      { email: 'ian@example.com', role: 'interviewer' },
      { email: 'rita@example.com', role: 'reviewer' },
    ],
  }, session.access_token);
  const id = created.interview.id;
  const browser = await launchBrowser();
  try {
    const ivy = await (await browser.newContext()).newPage();
    const cas = await (await browser.newContext()).newPage();

    step('Ivy writes private notes in the room; they are saved');
    await server.signIn(ivy, 'ivy@example.com');
    await server.enterRoom(ivy, id);
    const notes = ivy.getByRole('textbox', { name: 'Your private notes' });
    await notes.fill('Clear plan up front. Slow to write tests.');
    await ivy.locator('.notes [role="status"]', { hasText: 'Saved' }).waitFor({ timeout: 15_000 });

    step("the candidate's room has no notes");
    await cas.goto(created.invites[0].url);
    await cas.getByRole('button', { name: 'Continue to the interview' }).click();
    await cas.getByRole('heading', { name: 'Scored round' }).waitFor();
    await server.enterRoom(cas, id);
    await cas.getByRole('heading', { name: 'Chat' }).waitFor();
    assert.equal(await cas.getByRole('heading', { name: 'Your private notes' }).count(), 0);

    step('after the room, Ivy fills in her scorecard from her notes');
    await ivy.getByRole('button', { name: 'Leave', exact: true }).click();
    await ivy.goto(`${server.base}/interviews/${id}`);
    const scorecards = ivy.getByRole('region', { name: 'Scorecards' });
    await scorecards.getByRole('status').filter({ hasText: '0 of 2 in; missing: Ivy Interviewer, Ian Interviewer.' }).waitFor();
    const form = ivy.getByRole('form', { name: 'Your scorecard' });
    await form.waitFor();
    assert.deepEqual(await unlabelledControls(ivy), [], 'every control is labelled');
    const scores = { 'Problem solving': '3', 'Code quality': '3', 'Testing and debugging': '2', Communication: '4' };
    for (const [criterion, score] of Object.entries(scores)) {
      await form.getByRole('radiogroup', { name: `${criterion}: score` }).getByRole('radio', { name: score }).check();
    }
    await form.getByLabel('Comment on Testing and debugging').fill('Tests only when asked.');
    await form.getByRole('button', { name: 'Submit scorecard' }).click();
    await form.getByRole('alert').filter({ hasText: 'Still to score: the recommendation.' }).waitFor();
    await form.getByRole('radio', { name: 'Yes', exact: true }).check();
    await form.getByRole('button', { name: 'Start from my private notes' }).click();
    assert.equal(await form.getByLabel('Summary').inputValue(), 'Clear plan up front. Slow to write tests.');
    await form.getByRole('button', { name: 'Submit scorecard' }).click();
    await scorecards.getByRole('status').filter({ hasText: 'Your scorecard is saved.' }).waitFor();
    await scorecards.getByRole('status').filter({ hasText: '1 of 2 in; missing: Ian Interviewer.' }).waitFor();
    await ivy.screenshot({ path: join(artifacts, 'scorecard-submitted.png'), fullPage: true });

    step('the reviewer sees whose scorecard is missing, and reads Ivy\'s');
    const rita = await (await browser.newContext()).newPage();
    await server.signIn(rita, 'rita@example.com');
    const line = rita.getByRole('listitem').filter({ hasText: 'Scored round' });
    await line.getByText('Scorecards missing: Ian Interviewer').waitFor();
    await line.getByRole('link', { name: 'Scored round' }).click();
    const card = rita.getByRole('article', { name: "Ivy Interviewer's scorecard" });
    await card.waitFor();
    assert.match(await card.innerText(), /Yes/);
    assert.match(await card.innerText(), /Testing and debugging\s+2 of 4\s+Tests only when asked\./);
    assert.match(await card.innerText(), /Clear plan up front\. Slow to write tests\./);
    assert.equal(await rita.getByRole('form', { name: 'Your scorecard' }).count(), 0, 'a reviewer reads, never submits');

    step('the candidate sees no scorecards on the interview page');
    await cas.goto(`${server.base}/interviews/${id}`);
    await cas.getByRole('heading', { name: 'Participants' }).waitFor();
    assert.equal(await cas.getByRole('heading', { name: 'Scorecards' }).count(), 0);

    step('an admin adds a template; Ian is offered it');
    const ada = await (await browser.newContext()).newPage();
    await server.signIn(ada, 'ada@example.com');
    await ada.getByRole('link', { name: 'Scorecards' }).click();
    await ada.getByRole('button', { name: 'New template' }).click();
    await ada.getByLabel('Name', { exact: true }).fill('Systems round');
    await ada.getByLabel('Name of criterion 1').fill('Design');
    await ada.getByLabel('Guidance for criterion 1 (what 1 to 4 mean)').fill('4: weighs trade-offs unprompted');
    await ada.getByRole('button', { name: 'Add criterion' }).click();
    await ada.getByLabel('Name of criterion 2').fill('Operations');
    await ada.getByRole('button', { name: 'Save template' }).click();
    await ada.getByText('Saved “Systems round”.').waitFor();
    const ian = await (await browser.newContext()).newPage();
    await server.signIn(ian, 'ian@example.com');
    await ian.getByText('Your scorecard is missing').waitFor();
    await ian.goto(`${server.base}/interviews/${id}`);
    const template = ian.getByLabel('Template');
    await template.selectOption({ label: 'Systems round' });
    await ian.getByRole('group', { name: 'Design' }).getByText('4: weighs trade-offs unprompted').waitFor();
    assert.equal(await ian.getByRole('radiogroup').count(), 2, 'one score per criterion of the new template');
  } finally {
    await browser.close();
  }
});
