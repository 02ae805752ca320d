// Cancel a running run from its page: it ends cancelled and says so, the running step is
// cancelled and the Cancel button goes away.
import { run, env, base, check, signIn } from './lib.mjs';

run(async ({ page }) => {
  await signIn(page, env('SIMPLECI_LINK'));
  await page.goto(`${base}/projects/slow`);
  await page.getByRole('button', { name: 'Run pipeline' }).click();
  await page.waitForURL(/\/projects\/slow\/runs\//);
  await page.locator('#step-1-log').getByText('tick 1', { exact: true }).waitFor({ timeout: 30000 });
  await page.getByRole('button', { name: 'Cancel run' }).click();
  await page.locator('.runhead .badge', { hasText: 'cancelled' }).waitFor({ timeout: 30000 });
  const said = await page.locator('.runhead p[role=status]').innerText();
  check(said.startsWith('The run was cancelled'), `the run page says "${said}"`);
  const count = page.locator('section.step', { has: page.getByRole('button', { name: /count/ }) });
  await page.waitForFunction(() => document.querySelector('section.step[data-step="1"] .badge')?.textContent === 'cancelled');
  check(await page.getByRole('button', { name: 'Cancel run' }).isHidden(), 'the Cancel button is still shown');
  const ticks = await count.locator('.line', { hasText: /^\d+tick/ }).count();
  check(!(await count.getByText('tick 16', { exact: true }).count()), `the run went on after the cancel (${ticks} ticks)`);
});
