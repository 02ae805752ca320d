// Follow a link to a log line (#step-1-L3): the page opens the step, highlights the
// line and scrolls it into view. Clicking another line's number links to it.
import { run, env, base, check, signIn } from './lib.mjs';

run(async ({ page }) => {
  await signIn(page, env('SIMPLECI_LINK'));
  await page.setViewportSize({ width: 1000, height: 500 });
  const url = `${base}/projects/demo/runs/${env('SIMPLECI_DEMO_RUN')}#step-1-L3`;
  await page.goto(url);
  const line = page.locator('#step-1-L3');
  await line.waitFor();
  await page.waitForFunction(() => document.getElementById('step-1-L3').classList.contains('hl'));
  check((await line.innerText()).includes('compiling part 2'), `line 3 reads "${await line.innerText()}"`);
  check((await page.getByRole('button', { name: /Build/ }).getAttribute('aria-expanded')) === 'true', 'the step did not open');
  check(await line.isVisible(), 'the line is not visible');
  const inView = () => line.evaluate((el) => {
    const r = el.getBoundingClientRect();
    return r.top >= 0 && r.bottom <= window.innerHeight;
  });
  check(await inView(), 'the line is not scrolled into view');
  check(await page.locator('.line.hl').count() === 1, 'more than one line highlighted');

  await page.evaluate(() => { window.before = document.querySelector('.runhead'); });
  await page.locator('#step-1-L5 .ln').click();
  await page.waitForURL(/#step-1-L5$/);
  await page.waitForFunction(() => document.getElementById('step-1-L5').classList.contains('hl'));
  check(!(await line.evaluate((el) => el.classList.contains('hl'))), 'the old line stayed highlighted');
  check(await page.evaluate(() => window.before === document.querySelector('.runhead')), 'a click on a line number rebuilt the page');
});
