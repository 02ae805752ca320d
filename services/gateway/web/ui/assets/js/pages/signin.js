// Sign in: paste an API token (kept for this tab, or remembered on this device), or
// sign in with GitHub where the deployment configured it.
import * as api from '../api.js';
import { h } from '../dom.js';
import { navigate } from '../main.js';

export function signInPage(main) {
  const next = new URLSearchParams(location.search).get('next');
  const go = () => navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
  if (api.token()) {
    go();
    return;
  }
  document.title = 'Sign in · SimpleCI';
  const err = h('p', { class: 'error', role: 'alert', hidden: true });
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const remember = h('input', { id: 'remember', type: 'checkbox' });
  // Whether the deployment has GitHub sign-in cannot be asked without starting one (the
  // login route stores a state), so the link is always offered, saying so.
  const github = h('p', {}, h('a', { class: 'button secondary', href: '/auth/github/login' }, 'Sign in with GitHub'),
    h('span', { class: 'hint' }, ' where this server has GitHub sign-in set up; it shows a token to paste below.'));
  const form = h('form', { class: 'card', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api.verify(input.value);
      api.signIn(input.value, remember.checked);
      go();
    } catch (ex) {
      err.textContent = `That token was not accepted: ${ex.message}`;
      err.hidden = false;
    }
  } },
  h('label', { for: 'token' }, 'API token'),
  input,
  h('p', { class: 'hint' }, 'simpleci dev prints a sign-in link and writes the admin token to .simpleci-data/admin-token; ',
    'simpleci tokens create makes one for you.'),
  h('label', { class: 'check' }, remember, ' Remember me on this device'),
  h('button', { type: 'submit' }, 'Sign in'),
  err);
  main.append(h('h1', {}, 'Sign in to SimpleCI'), github, form);
  input.focus();
}
