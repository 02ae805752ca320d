// Set a secret: it is listed by name and update time, and its value is nowhere in the
// page (text, attributes, form fields) afterwards; delete it.
import { run, env, base, check, signIn, checkAccessible } from './lib.mjs';

const VALUE = 'ui-secret-value-7c1e9';

run(async ({ page }) => {
  await signIn(page, env('SIMPLECI_LINK'));
  await page.goto(`${base}/projects/demo`);
  await page.getByRole('link', { name: 'Secrets' }).click();
  await page.getByRole('heading', { name: 'Secrets of demo' }).waitFor();
  await checkAccessible(page, 'secrets page');
  await page.getByLabel('Name').fill('UI_TOKEN');
  await page.getByLabel('Value').fill(VALUE);
  check((await page.getByLabel('Value').getAttribute('type')) === 'password', 'the value field shows what is typed');
  await page.getByRole('button', { name: 'Save secret' }).click();
  await page.getByText('Secret UI_TOKEN saved').waitFor();
  const row = page.locator('tr[data-secret="UI_TOKEN"]');
  await row.waitFor();
  check(await row.locator('time').count() === 1, 'no update time');

  const nowhere = async (where) => {
    const found = await page.evaluate((v) => document.documentElement.outerHTML.includes(v) ||
      [...document.querySelectorAll('input, textarea')].some((el) => el.value.includes(v)), VALUE);
    check(!found, `${where}: the secret's value is in the page`);
  };
  await nowhere('after saving');
  await page.reload();
  await row.waitFor();
  await nowhere('after a reload');

  page.once('dialog', (d) => d.accept());
  await row.getByRole('button', { name: 'Delete secret UI_TOKEN' }).click();
  await page.getByText('Secret UI_TOKEN deleted.').waitFor();
  await row.waitFor({ state: 'detached' });
});
