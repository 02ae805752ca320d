// Filter a project's runs by event: the filter is in the address (a reload or a shared
// link keeps it) and only matching runs are listed.
import { run, env, base, check, signIn } from './lib.mjs';

run(async ({ page }) => {
  await signIn(page, env('SIMPLECI_LINK'));
  await page.goto(`${base}/projects/slow`);
  const rows = page.locator('#runs tbody tr');
  await rows.first().waitFor();
  const events = () => rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.event));
  check(new Set(await events()).size >= 2, `want runs of two events to filter, got ${await events()}`);

  await page.getByLabel('Event').selectOption('push');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL((u) => u.searchParams.get('event') === 'push');
  await page.waitForFunction(() => {
    const trs = [...document.querySelectorAll('#runs tbody tr')];
    return trs.length > 0 && trs.every((tr) => tr.dataset.event === 'push');
  });
  const pushed = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.run));
  check(pushed.includes(env('SIMPLECI_PUSHED_RUN')), `the pushed run is not listed: ${pushed}`);
  check(/\bpush\b/.test(await rows.first().locator('.event').innerText()), 'the event column does not say push');

  await page.reload();
  await rows.first().waitFor();
  check((await page.getByLabel('Event').inputValue()) === 'push', 'the filter is not kept after a reload');
  check((await events()).every((e) => e === 'push'), `after a reload: ${await events()}`);

  // By date, in the browser's time zone: today has the runs, a day from tomorrow none.
  const [today, tomorrow] = await page.evaluate(() => {
    const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    const d = new Date();
    const t = new Date(d.getTime() + 86400000);
    return [iso(d), iso(t)];
  });
  await page.goto(`${base}/projects/slow`);
  await rows.first().waitFor();
  await page.getByLabel('From').fill(tomorrow);
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL((u) => u.searchParams.get('since') === tomorrow);
  await page.getByText('No runs match these filters.').waitFor();
  await page.getByLabel('From').fill(today);
  await page.getByLabel('To').fill(today);
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL((u) => u.searchParams.get('since') === today && u.searchParams.get('until') === today);
  await rows.first().waitFor();
  check(await rows.count() >= 2, `today's runs: ${await rows.count()}`);

  // Paging: one run a page, older runs follow, and back to the newest.
  await page.goto(`${base}/projects/slow?page_size=1`);
  await rows.first().waitFor();
  check(await rows.count() === 1, `page_size=1 shows ${await rows.count()} runs`);
  const newest = await rows.first().getAttribute('data-run');
  await page.getByRole('link', { name: 'Older runs' }).click();
  await page.waitForURL((u) => u.searchParams.get('page_token'));
  await page.waitForFunction((id) => {
    const tr = document.querySelector('#runs tbody tr');
    return tr && tr.dataset.run !== id;
  }, newest);
  await page.getByRole('link', { name: 'Newest runs' }).click();
  await page.waitForFunction((id) => {
    const tr = document.querySelector('#runs tbody tr');
    return tr && tr.dataset.run === id;
  }, newest);
  check(!new URL(page.url()).searchParams.get('page_token'), `back to the newest, the URL still has a page token: ${page.url()}`);

  // No match says so.
  await page.goto(`${base}/projects/slow?event=tag`);
  await page.getByText('No runs match these filters.').waitFor();
  await page.getByRole('link', { name: 'Clear' }).click();
  await page.waitForURL(`${base}/projects/slow`);
  await rows.first().waitFor();
});
