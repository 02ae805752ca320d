// A run whose step printed 100,000 lines: the page shows the log's first lines at once
// while the rest is drawn in slices, stays responsive (no long task blocks it for long),
// and scrolls to the last line. Prints the timings docs/benchmarks.md quotes.
import { run, env, base, check, signIn } from './lib.mjs';

const LINES = 100000;

run(async ({ page }) => {
  await signIn(page, env('SIMPLECI_LINK'));
  // Long tasks (over 50 ms) of the page's main thread, from the first script on.
  await page.addInitScript(() => {
    window.longTasks = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.longTasks.push(e.duration); })
      .observe({ type: 'longtask', buffered: true });
  });
  const t0 = Date.now();
  await page.goto(`${base}/projects/slow/runs/${env('SIMPLECI_BIG_RUN')}#step-0-L1`);
  await page.locator('#step-0-L1.hl').waitFor({ timeout: 60000 });
  const firstPaint = Date.now() - t0;
  // Responsive while the rest is drawn: a click on another step answers at once. (CSS
  // selectors only here: Playwright's text and role queries walk all 100,000 lines.)
  const clickAt = Date.now();
  await page.locator('#step-1 .steptoggle').click();
  await page.waitForFunction(() => document.querySelector('#step-1 .steptoggle').getAttribute('aria-expanded') === 'true');
  const clickAnswer = Date.now() - clickAt;
  const drawn = await page.evaluate(() => document.querySelectorAll('#step-0-log .line').length);
  await page.waitForFunction(() => document.getElementById('log-state').textContent === 'Log complete', null, { timeout: 120000, polling: 100 });
  const complete = Date.now() - t0;
  const count = await page.locator('#step-0-log .line').count();
  check(count === LINES, `the log shows ${count} lines, want ${LINES}`);

  const s0 = Date.now();
  await page.locator('#step-0-log').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await page.waitForFunction((n) => {
    const el = document.getElementById(`step-0-L${n}`);
    const box = document.getElementById('step-0-log').getBoundingClientRect();
    const r = el && el.getBoundingClientRect();
    return r && r.bottom <= box.bottom + 1 && r.top >= box.top && el.textContent.endsWith(`line ${n}`);
  }, LINES, { timeout: 30000 });
  const toEnd = Date.now() - s0;
  const longest = await page.evaluate(() => Math.max(0, ...window.longTasks));
  console.log(`100k-line log: first lines shown ${firstPaint} ms after navigation; all ${LINES} lines drawn at ${complete} ms; ` +
    `a click answered in ${clickAnswer} ms meanwhile (${drawn} lines drawn then); scroll to the end ${toEnd} ms; longest main-thread task ${Math.round(longest)} ms`);
  // Bounds with room for a loaded machine; drawing all lines in one go used to block the
  // page for the whole time (about 15 s here), and laying out every line each frame took minutes.
  check(clickAnswer < 5000, `the page did not answer a click for ${clickAnswer} ms while drawing the log`);
  check(complete < 60000, `drawing the log took ${complete} ms`);
  check(toEnd < 10000, `scrolling to the end took ${toEnd} ms`);
});
