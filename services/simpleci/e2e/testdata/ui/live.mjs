// Start a run that prints for a while: its running step opens by itself and its log grows
// while the run is still running, colours rendered (no escape codes shown), stderr
// marked; the log follows its end until the user scrolls up.
import { run, env, base, check, signIn } from './lib.mjs';

run(async ({ page }) => {
  await signIn(page, env('SIMPLECI_LINK'));
  await page.goto(`${base}/projects/slow`);
  await page.getByRole('button', { name: 'Run pipeline' }).click();
  await page.waitForURL(/\/projects\/slow\/runs\//);
  const count = page.getByRole('button', { name: /count/ });
  await page.waitForFunction(() => document.querySelector('#step-1-log .line'), null, { timeout: 30000 });
  check((await count.getAttribute('aria-expanded')) === 'true', 'the running step did not open');
  const log = page.locator('#step-1-log');
  await log.getByText('tick 2', { exact: true }).waitFor();
  const before = await log.locator('.line').count();
  check((await page.locator('.runhead .badge').innerText()) === 'running', 'the run should still be running');
  await log.getByText(`tick ${Math.min(before + 3, 16)}`, { exact: true }).waitFor();
  const later = await log.locator('.line').count();
  check(later > before, `the log did not grow while running: ${before} then ${later} lines`);
  check((await page.locator('.runhead .badge').innerText()) === 'running', 'the run ended before the log was seen growing');

  // Colours: the escape sequence is gone, the text is red; stderr is marked.
  const red = log.locator('span.fg1', { hasText: 'red alert' });
  check(await red.count() === 1, 'the red text has no colour class');
  check(await red.evaluate((el) => getComputedStyle(el).color) === 'rgb(255, 123, 114)', 'the red text is not red');
  const text = await log.innerText();
  check(!text.includes('\u001b') && !text.includes('[31m'), 'escape codes are shown');
  check(await log.locator('.line.stderr', { hasText: 'to stderr' }).count() === 1, 'stderr is not marked');

  // Following: the end of the log stays in view; scrolling up stops it.
  const atEnd = () => log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 8);
  const follow = page.getByLabel('Follow log');
  check(await follow.isChecked(), 'follow mode is off at the start');
  await log.evaluate((el) => el.style.setProperty('max-height', '120px')); // make it scroll
  await log.getByText(`tick ${Math.min(later + 2, 16)}`, { exact: true }).waitFor();
  await page.waitForTimeout(200);
  check(await atEnd(), 'following, the log is not scrolled to its end');
  await log.hover();
  await page.mouse.wheel(0, -400);
  await page.waitForFunction(() => !document.getElementById('follow').checked, null, { timeout: 5000 });
  const top = await log.evaluate((el) => el.scrollTop);
  await log.getByText('tick 16', { exact: true }).waitFor({ state: 'attached', timeout: 30000 });
  check(await log.evaluate((el) => el.scrollTop) === top, 'scrolled up, the log still moved');
  await follow.check();
  check(await atEnd(), 'turning follow back on did not scroll to the end');
  await page.locator('.runhead .badge', { hasText: 'succeeded' }).waitFor({ timeout: 30000 });
});
