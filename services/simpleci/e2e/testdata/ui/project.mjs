// Create a local project through the form (a bad path and a taken name show the API's
// error in plain words), see it in the list, change its events and network in its
// settings and see them kept after a reload, delete it.
import { run, env, base, check, signIn, checkAccessible } from './lib.mjs';

const NAME = 'formproj';

// apiCall asks the API directly, as the test's own witness of what the UI shows.
async function apiCall(method, path, body) {
  const res = await fetch(`${base}${path}`, { method, headers: { Authorization: `Bearer ${env('SIMPLECI_TOKEN')}`,
    'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

run(async ({ page }) => {
  const repo = env('SIMPLECI_FORM_REPO');
  const missing = `${repo}-missing`;
  await signIn(page, env('SIMPLECI_LINK'));
  await page.getByRole('link', { name: 'New project' }).click();
  await page.getByRole('heading', { name: 'New project' }).waitFor();
  // simpleci dev has no sign-in with GitHub: the form offers local repositories only.
  await page.getByText('GitHub repositories are listed here after signing in with GitHub').waitFor();
  const providers = await page.getByLabel('Provider').locator('option').evaluateAll((os) => os.map((o) => o.value));
  check(providers.join() === 'local', `providers offered: ${providers}`);
  await checkAccessible(page, 'new project page');
  const tiers = await page.getByLabel('Tier').locator('option').evaluateAll((os) => os.map((o) => o.value));
  const served = (await apiCall('GET', '/api/v1/tiers')).body.tiers.map((t) => t.name);
  check(tiers.join() === served.join() && (await page.getByLabel('Tier').inputValue()) === 'standard', `tiers offered: ${tiers}, served: ${served}`);
  check(await page.getByLabel('Push', { exact: true }).isChecked() && await page.getByLabel('Manual').isChecked(), 'push and manual are not the default events');

  // A path that does not exist: the API's own words are shown beside the form.
  await page.getByLabel('Name').fill(NAME);
  await page.getByLabel('Repository', { exact: true }).fill(missing);
  await page.getByRole('button', { name: 'Create project' }).click();
  const refused = await apiCall('POST', '/api/v1/projects', { name: NAME, provider: 'local', repository: missing, events: ['push'] });
  check(refused.status === 404 && refused.body.message, `the API took a missing path: ${JSON.stringify(refused)}`);
  await page.getByRole('alert').filter({ hasText: refused.body.message }).waitFor();
  check(page.url() === `${base}/new-project`, `left the form after an error: ${page.url()}`);

  // The right path: the project is created and its runs page opens.
  await page.getByLabel('Repository', { exact: true }).fill(repo);
  await page.getByRole('button', { name: 'Create project' }).click();
  await page.waitForURL(`${base}/projects/${NAME}`);
  await page.getByRole('heading', { name: NAME }).waitFor();
  await page.goto(`${base}/`);
  await page.getByRole('link', { name: NAME, exact: true }).waitFor();

  // The same name again: taken (409), said so.
  await page.getByRole('link', { name: 'New project' }).click();
  await page.getByLabel('Name').fill(NAME);
  await page.getByLabel('Repository', { exact: true }).fill(repo);
  await page.getByRole('button', { name: 'Create project' }).click();
  await page.getByRole('alert').filter({ hasText: 'the name is taken' }).waitFor();

  // Settings: change the events and the network, kept after a reload and in the API.
  await page.goto(`${base}/`);
  await page.getByRole('row').filter({ has: page.getByRole('link', { name: NAME, exact: true }) }).getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: `Settings of ${NAME}` }).waitFor();
  await checkAccessible(page, 'settings page');
  check(await page.getByLabel('Push', { exact: true }).isChecked() && !(await page.getByLabel('Tag').isChecked()), 'settings do not show the events');
  check(!(await page.getByRole('heading', { name: 'Webhook' }).count()), 'a local project shows a webhook section');
  await page.getByLabel('Push', { exact: true }).uncheck();
  await page.getByLabel('Tag').check();
  await page.getByLabel('Network').selectOption('off');
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.getByText('Settings saved.').waitFor();
  await page.reload();
  await page.getByRole('button', { name: 'Save settings' }).waitFor();
  check(!(await page.getByLabel('Push', { exact: true }).isChecked()) && await page.getByLabel('Tag').isChecked() &&
    await page.getByLabel('Manual').isChecked(), 'the events are not kept after a reload');
  check(await page.getByLabel('Network').inputValue() === 'off', 'the network is not kept after a reload');
  const got = await apiCall('GET', `/api/v1/projects/${NAME}`);
  check([...got.body.events].sort().join() === 'manual,tag' && got.body.network === 'off', `the API has ${JSON.stringify(got.body)}`);

  // Delete, after confirming.
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Delete project' }).click();
  await page.waitForURL(`${base}/`);
  await page.getByRole('heading', { name: 'Projects' }).waitFor();
  await page.getByRole('link', { name: 'demo', exact: true }).waitFor();
  check(!(await page.getByRole('link', { name: NAME, exact: true }).count()), 'the deleted project is still listed');
  check((await apiCall('GET', `/api/v1/projects/${NAME}`)).status === 404, 'the project is still there');
}, { allowFailed: [{ status: 400, path: '/api/v1/github/repositories' }, { status: 409, path: '/api/v1/projects' }] });
