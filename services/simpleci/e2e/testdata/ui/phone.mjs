// At phone width (390 px) the pages fit without sideways scrolling and their controls
// work: trigger a run and read a step's log.
import { run, env, base, check, signIn } from './lib.mjs';

run(async ({ page }) => {
  const fits = async (where) => {
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    check(w <= 390, `${where}: the page is ${w}px wide at 390px`);
  };
  await signIn(page, env('SIMPLECI_LINK'));
  await fits('projects');
  await page.getByRole('link', { name: 'demo', exact: true }).click();
  await page.locator('#runs tbody tr').first().waitFor();
  await fits('runs');
  await page.getByRole('button', { name: 'Run pipeline' }).click();
  await page.waitForURL(/\/runs\//);
  await page.locator('.runhead .badge', { hasText: 'succeeded' }).waitFor({ timeout: 60000 });
  await page.getByRole('button', { name: /Report/ }).click();
  await page.locator('#step-3-log').getByText('stdout line').waitFor();
  await fits('run');
  await page.goto(`${base}/projects/demo/secrets`);
  await page.getByLabel('Name').waitFor();
  await fits('secrets');
}, { viewport: { width: 390, height: 844 } });
