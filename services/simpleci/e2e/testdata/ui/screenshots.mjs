// Screenshots of the run list and a run page for the documentation, written to
// $SIMPLECI_UI_SCREENSHOTS (ui_test.go runs this only when that is set).
import { run, env, base, signIn } from './lib.mjs';

run(async ({ page }) => {
  const dir = env('SIMPLECI_UI_SCREENSHOTS');
  await signIn(page, env('SIMPLECI_LINK'));
  await page.goto(`${base}/projects/slow`);
  await page.locator('#runs tbody tr').first().waitFor();
  await page.screenshot({ path: `${dir}/ui-runs.png` });
  await page.goto(`${base}/projects/slow/runs/${env('SIMPLECI_PUSHED_RUN')}`);
  await page.getByText('Log complete').waitFor();
  await page.getByRole('button', { name: /count/ }).click();
  await page.locator('#step-1-log').getByText('tick 16', { exact: true }).waitFor();
  await page.locator('#step-1-log').evaluate((el) => { el.scrollTop = 0; });
  await page.screenshot({ path: `${dir}/ui-run.png` });
}, { viewport: { width: 1100, height: 860 } });
