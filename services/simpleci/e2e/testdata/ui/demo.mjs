// Start the demo run from its project's page, see it succeed with the tag-only step
// skipped and why, and expand a finished step (with the keyboard) to read its log.
import { readFileSync } from 'node:fs';
import { run, env, check, signIn, checkAccessible, runId } from './lib.mjs';

run(async ({ page }) => {
  await signIn(page, env('SIMPLECI_LINK'));
  await checkAccessible(page, 'projects page');
  await page.getByRole('link', { name: 'demo', exact: true }).click();
  await page.getByRole('heading', { name: 'demo' }).waitFor();
  await checkAccessible(page, 'runs page');
  await page.getByRole('button', { name: 'Run pipeline' }).click();
  await page.waitForURL(/\/projects\/demo\/runs\//);
  check(runId(page.url()), `no run in ${page.url()}`);
  await page.locator('.runhead .badge', { hasText: 'succeeded' }).waitFor({ timeout: 60000 });
  await page.getByText('Log complete').waitFor();
  await checkAccessible(page, 'run page');

  const deploy = page.locator('section.step', { has: page.getByRole('button', { name: /Deploy \(tags only\)/ }) });
  check((await deploy.locator('.badge').innerText()) === 'skipped', 'the tag-only step is not shown skipped');
  const why = await deploy.locator('.reason').innerText();
  check(/^Skipped: /.test(why) && why.includes('tag'), `the skipped step does not say why: "${why}"`);
  // The commit's message (the demo repository's "SimpleCI demo"), as text.
  const message = await page.locator('.runhead pre.commit-message').innerText();
  check(message === 'SimpleCI demo', `the run page's commit message: "${message}"`);
  const isolation = await page.locator('.isolation').innerText();
  check(isolation.startsWith('isolation:'), `isolation line: "${isolation}"`);

  // A succeeded step starts collapsed; Enter on its focused header opens it.
  const build = page.getByRole('button', { name: /Build/ });
  check((await build.getAttribute('aria-expanded')) === 'false', 'a succeeded step should start collapsed');
  await build.focus();
  await page.keyboard.press('Enter');
  check((await build.getAttribute('aria-expanded')) === 'true', 'Enter did not expand the step');
  const log = page.locator(`#${await build.getAttribute('aria-controls')}`);
  await log.getByText('compiling part 3').waitFor();
  await log.getByText('build ok').waitFor();
  const warn = log.locator('.line', { hasText: 'warning: this is a demo' });
  check(await warn.evaluate((el) => el.classList.contains('stderr')), 'the stderr line is not marked');
  check(!(await log.locator('.line.stderr', { hasText: 'build ok' }).count()), 'a stdout line is marked stderr');
  await page.keyboard.press('Enter');
  check(await log.isHidden(), 'Enter again did not collapse the step');

  // The raw log, as the steps printed it.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download raw log' }).click()]);
  check(/^run-\d+\.log$/.test(download.suggestedFilename()), `download named ${download.suggestedFilename()}`);
  const raw = readFileSync(await download.path(), 'utf8');
  for (const want of ['isolation:', 'Hello from SimpleCI', 'compiling part 3', 'warning: this is a demo', 'stderr line']) {
    check(raw.includes(want), `the raw log lacks "${want}":\n${raw}`);
  }

  // The run's recorded events, on a tab; the arrow keys move between the tabs.
  await page.getByRole('tab', { name: 'Events' }).click();
  const types = page.locator('#panel-events li');
  await types.first().waitFor();
  const seen = await types.evaluateAll((lis) => lis.map((li) => li.dataset.type));
  const at = (t) => seen.indexOf(t);
  check(at('RunQueued') >= 0 && at('RunQueued') < at('RunStarted') && at('RunStarted') < at('RunFinished'), `events: ${seen}`);
  check(await page.locator('#panel-steps').isHidden(), 'the steps stay shown under the Events tab');
  await page.locator('#panel-events li', { hasText: 'RunFinished' }).locator('summary').click();
  check((await page.locator('#panel-events li', { hasText: 'RunFinished' }).locator('pre').innerText()).includes('succeeded'), 'the event body is not shown');
  await page.getByRole('tab', { name: 'Events' }).focus();
  await page.keyboard.press('ArrowLeft');
  check((await page.getByRole('tab', { name: 'Steps' }).getAttribute('aria-selected')) === 'true', 'ArrowLeft did not select Steps');
  check(await page.locator('#panel-steps').isVisible(), 'the steps are not shown again');

  // Re-run: a new run of the same commit (the demo run succeeded: no re-run from a failed step).
  const first = runId(page.url());
  const sha = await page.locator('.meta code').getAttribute('title');
  check(await page.getByRole('button', { name: 'Re-run from failed step' }).isHidden(), 'a succeeded run offers a re-run from its failed step');
  await page.getByRole('button', { name: 'Re-run', exact: true }).click();
  await page.waitForURL((u) => runId(u.toString()) && runId(u.toString()) !== first);
  await page.locator('.runhead .badge', { hasText: 'succeeded' }).waitFor({ timeout: 60000 });
  check((await page.locator('.meta code').getAttribute('title')) === sha, 'the new run is of another commit');
  check((await page.locator('.meta').getByRole('link', { name: /^run #\d+$/ }).getAttribute('href')).endsWith(`/runs/${first}`), 'the re-run does not link to the run it re-runs');

  // The run list shows each run's short sha with its commit message's first line.
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'demo', exact: true }).click();
  const row = page.locator(`tr[data-run="${first}"]`);
  await row.waitFor();
  const commit = await row.locator('td[data-label="Commit"]').innerText();
  check(commit.replace(/\s+/g, ' ').trim() === `${sha.slice(0, 7)} SimpleCI demo`, `the run list's commit cell: "${commit}"`);
});
