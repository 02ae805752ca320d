// Sign in with the one-click link `simpleci dev` prints; the token leaves the address
// bar at once. Sign out forgets it. Sign in again with a pasted token, remembered.
import { run, env, base, check, signIn, checkAccessible } from './lib.mjs';

run(async ({ page }) => {
  await signIn(page, env('SIMPLECI_LINK'));
  check(!page.url().includes('token'), `the token stayed in the address bar: ${page.url()}`);
  check(await page.evaluate(() => sessionStorage.getItem('simpleci.token')) === env('SIMPLECI_TOKEN'),
    'the token is not kept in sessionStorage');
  await page.getByRole('link', { name: 'demo' }).waitFor();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to SimpleCI' }).waitFor();
  check(await page.evaluate(() => sessionStorage.length + localStorage.length) === 0, 'sign out left the token in storage');
  await page.goto(`${base}/projects/demo`);
  await page.getByRole('heading', { name: 'Sign in to SimpleCI' }).waitFor(); // signed out stays signed out
  await checkAccessible(page, 'sign-in page');
  check(await page.getByRole('link', { name: 'Sign in with GitHub' }).getAttribute('href') === '/auth/github/login', 'no GitHub sign-in link');

  await page.getByLabel('API token').fill('sci_not-a-real-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('That token was not accepted').waitFor();

  await page.getByLabel('API token').fill(env('SIMPLECI_TOKEN'));
  await page.getByLabel('Remember me on this device').check();
  await page.getByRole('button', { name: 'Sign in' }).click();
  // Back where the user was going.
  await page.getByRole('heading', { name: 'demo' }).waitFor();
  check(new URL(page.url()).pathname === '/projects/demo', `after sign-in: ${page.url()}`);
  check(await page.evaluate(() => localStorage.getItem('simpleci.token')) === env('SIMPLECI_TOKEN'), '"remember me" did not use localStorage');
});
