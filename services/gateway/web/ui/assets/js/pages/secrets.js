// A project's secrets: names and update times; set (the value goes to the API and is
// cleared from the form at once) and delete. A value is never shown: the API never
// returns one.
import * as api from '../api.js';
import { h, link, when, errorBox } from '../dom.js';

export function secretsPage(main, project) {
  const base = `/projects/${api.enc(project)}`;
  const path = `/api/v1/projects/${api.enc(project)}/secrets`;
  const ctl = new AbortController();
  document.title = `Secrets of ${project} · SimpleCI`;
  const list = h('div', { 'aria-live': 'polite' });
  const msg = h('p', { role: 'status' });
  const name = h('input', { id: 'secret-name', name: 'name', type: 'text', required: true, pattern: '[A-Z_][A-Z0-9_]*',
    autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'secret-name-hint' });
  const value = h('input', { id: 'secret-value', name: 'value', type: 'password', required: true, minlength: '4', autocomplete: 'new-password' });
  const say = (text, cls) => { msg.textContent = text; msg.className = cls || ''; };
  const form = h('form', { class: 'card', 'aria-label': 'Set a secret', onsubmit: async (e) => {
    e.preventDefault();
    const n = name.value.trim();
    const v = value.value;
    value.value = ''; // out of the page at once, whatever the answer
    try {
      await api.call('PUT', `${path}/${api.enc(n)}`, { value: v });
      name.value = '';
      say(`Secret ${n} saved. Its value is not shown again.`);
      load();
    } catch (err) {
      say(`Could not save ${n}: ${err.message}`, 'error');
    }
  } },
  h('h2', {}, 'Set a secret'),
  h('label', { for: 'secret-name' }, 'Name'), name,
  h('p', { class: 'hint', id: 'secret-name-hint' }, 'Upper-case letters, digits and _; steps get it as this environment variable. Setting an existing name replaces its value.'),
  h('label', { for: 'secret-value' }, 'Value'), value,
  h('button', { type: 'submit' }, 'Save secret'), msg);
  main.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/', 'Projects'), ' / ', link(base, project), ' / secrets'),
    h('h1', {}, `Secrets of ${project}`), list, form);

  async function load() {
    try {
      const res = await api.get(path, ctl.signal);
      const secrets = res.secrets || [];
      list.replaceChildren(secrets.length
        ? h('table', { class: 'list' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Updated'), h('th', { scope: 'col' }, h('span', { class: 'sr' }, 'Actions')))),
          h('tbody', {}, secrets.map((s) => h('tr', { 'data-secret': s.name },
            h('th', { scope: 'row' }, h('code', {}, s.name)),
            h('td', {}, when(s.updatedAt)),
            h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Delete secret ${s.name}`, onclick: async () => {
              if (!confirm(`Delete secret ${s.name}? Steps will no longer get it.`)) return;
              try {
                await api.call('DELETE', `${path}/${api.enc(s.name)}`);
                say(`Secret ${s.name} deleted.`);
                load();
              } catch (err) {
                say(`Could not delete ${s.name}: ${err.message}`, 'error');
              }
            } }, 'Delete'))))))
        : h('p', {}, 'No secrets yet.'));
    } catch (err) {
      if (!ctl.signal.aborted) list.replaceChildren(errorBox(err));
    }
  }
  load();
  return () => ctl.abort();
}
