// Creating a project and changing its settings, over the public API: POST and PATCH
// /api/v1/projects, the served tiers (GET /api/v1/tiers) and, where the caller signed in
// with GitHub and the server has it, their GitHub repositories (GET
// /api/v1/github/repositories). An API error is shown beside the form in plain words.
import * as api from '../api.js';
import { h, link, errorBox } from '../dom.js';
import { navigate } from '../main.js';

// The events the API accepts (the document's enum), as a user reads them.
const EVENTS = [['push', 'Push'], ['pull_request', 'Pull request'], ['tag', 'Tag'], ['manual', 'Manual'], ['schedule', 'Schedule']];
const NETWORKS = [['default', 'Default: on, except for pull requests from forks'], ['on', 'On (as default)'], ['off', 'Off: no network for any job']];

// fieldset of checkboxes, one per event, checked for those in chosen.
function eventsField(chosen) {
  const boxes = EVENTS.map(([v, label]) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'events', value: v, checked: chosen.includes(v) }), label));
  const fs = h('fieldset', { class: 'events' }, h('legend', {}, 'Events that start a run'), boxes);
  fs.value = () => [...fs.querySelectorAll('input:checked')].map((el) => el.value);
  return fs;
}

function select(id, options, value) {
  return h('select', { id, name: id }, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

// tierSelect fills a select with the served tiers (the project's own kept even if no
// longer served, so the form does not change it by itself).
async function tierSelect(sel, current, signal) {
  const res = await api.get('/api/v1/tiers', signal);
  const names = (res.tiers || []).map((t) => t.name);
  if (current && !names.includes(current)) names.push(current);
  sel.replaceChildren(...names.map((n) => h('option', { value: n, selected: n === (current || 'standard') }, n)));
}

// plain says what an API error means for this form.
function plain(err, what) {
  if (!(err instanceof api.ApiError)) return `${what}: ${err.message}`;
  switch (err.status) {
    case 409: return `${what}: the name is taken (${err.message}).`;
    case 502: return `${what}: GitHub failed, nothing was changed (${err.message}).`;
    case 403: return `${what}: not allowed (${err.message}).`;
    case 404: return `${what}: not found (${err.message}).`;
    default: return `${what}: ${err.message}`;
  }
}

export function newProjectPage(main) {
  const ctl = new AbortController();
  document.title = 'New project · SimpleCI';
  const msg = h('p', { role: 'alert', id: 'project-form-error' });
  const say = (text) => { msg.textContent = text; msg.className = text ? 'error' : ''; };
  const name = h('input', { id: 'project-name', name: 'name', type: 'text', required: true, pattern: '[a-z0-9][a-z0-9\\-]{0,62}',
    maxlength: '63', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'project-name-hint project-form-error' });
  const provider = select('project-provider', [['local', 'Local (a path or git URL)']], 'local');
  const providerHint = h('p', { class: 'hint', id: 'project-provider-hint' }, 'Checking whether GitHub repositories can be listed…');
  provider.setAttribute('aria-describedby', 'project-provider-hint');
  const path = h('input', { id: 'project-path', name: 'repository', type: 'text', autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'project-path-hint' });
  const localBox = h('div', {}, h('label', { for: 'project-path' }, 'Repository'), path,
    h('p', { class: 'hint', id: 'project-path-hint' }, 'An absolute path under the server\'s repository directories, or an https:// or ssh:// URL.'));
  const picker = h('select', { id: 'project-github-repo', name: 'github-repository', size: '8' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More repositories');
  const ghBox = h('div', { hidden: true }, h('label', { for: 'project-github-repo' }, 'GitHub repository'), picker, h('div', {}, more));
  const events = eventsField(['push', 'manual']);
  const tier = h('select', { id: 'project-tier', name: 'tier' });
  const network = select('project-network', NETWORKS, 'default');
  const submit = h('button', { type: 'submit' }, 'Create project');

  let next = '';
  async function loadRepos() {
    more.disabled = true;
    try {
      const res = await api.get(`/api/v1/github/repositories${api.qs({ page_size: 50, page_token: next })}`, ctl.signal);
      for (const r of res.repositories || []) picker.append(h('option', { value: r.fullName }, r.private ? `${r.fullName} (private)` : r.fullName));
      next = res.nextPageToken || '';
      more.hidden = !next;
      return true;
    } catch (err) {
      if (!ctl.signal.aborted && picker.options.length) say(plain(err, 'Could not list more GitHub repositories'));
      return false;
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', loadRepos);
  const showProvider = () => {
    const gh = provider.value === 'github';
    ghBox.hidden = !gh;
    localBox.hidden = gh;
    path.required = !gh;
    picker.required = gh;
  };
  provider.addEventListener('change', showProvider);

  const form = h('form', { class: 'card', 'aria-label': 'New project', onsubmit: async (e) => {
    e.preventDefault();
    say('');
    const ev = events.value();
    if (!ev.length) return say('Choose at least one event that starts a run.');
    const body = { name: name.value.trim(), provider: provider.value,
      repository: provider.value === 'github' ? picker.value : path.value.trim(), events: ev, tier: tier.value, network: network.value };
    submit.disabled = true;
    try {
      const p = await api.call('POST', '/api/v1/projects', body);
      navigate(`/projects/${api.enc(p.name)}`);
    } catch (err) {
      say(plain(err, 'The project was not created'));
    } finally {
      submit.disabled = false;
    }
  } },
  h('label', { for: 'project-name' }, 'Name'), name,
  h('p', { class: 'hint', id: 'project-name-hint' }, 'Lower-case letters, digits and -, at most 63; it names the project in addresses.'),
  h('label', { for: 'project-provider' }, 'Provider'), provider, providerHint,
  localBox, ghBox, events,
  h('label', { for: 'project-tier' }, 'Tier'), tier,
  h('label', { for: 'project-network' }, 'Network'), network,
  submit, msg);
  main.append(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/', 'Projects'), ' / new'), h('h1', {}, 'New project'), form);
  showProvider();

  tierSelect(tier, '', ctl.signal).catch((err) => { if (!ctl.signal.aborted) say(plain(err, 'Could not list the tiers')); });
  loadRepos().then((ok) => {
    if (ctl.signal.aborted) return;
    if (ok) {
      provider.prepend(h('option', { value: 'github' }, 'GitHub'));
      provider.value = 'github';
      providerHint.textContent = 'Pick one of your GitHub repositories (its webhook is registered for you), or a local repository.';
      showProvider();
    } else {
      providerHint.textContent = 'GitHub repositories are listed here after signing in with GitHub, where the server has it set up.';
    }
  });
  return () => ctl.abort();
}

export function settingsPage(main, project) {
  const ctl = new AbortController();
  const base = `/projects/${api.enc(project)}`;
  const path = `/api/v1/projects/${api.enc(project)}`;
  document.title = `Settings of ${project} · SimpleCI`;
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading the project…'));
  main.append(h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/', 'Projects'), ' / ', link(base, project), ' / settings'),
    h('h1', {}, `Settings of ${project}`), body);

  async function load() {
    let p;
    try {
      p = await api.get(path, ctl.signal);
    } catch (err) {
      if (!ctl.signal.aborted) body.replaceChildren(errorBox(err));
      return;
    }
    const msg = h('p', { role: 'status' });
    const say = (text, cls) => { msg.textContent = text; msg.className = cls || ''; };
    const events = eventsField(p.events || []);
    const tier = h('select', { id: 'project-tier', name: 'tier' });
    const network = select('project-network', NETWORKS, p.network || 'default');
    const save = h('button', { type: 'submit' }, 'Save settings');
    const form = h('form', { class: 'card', 'aria-label': 'Project settings', onsubmit: async (e) => {
      e.preventDefault();
      const ev = events.value();
      if (!ev.length) return say('Choose at least one event that starts a run.', 'error');
      save.disabled = true;
      try {
        await api.call('PATCH', path, { events: ev, tier: tier.value, network: network.value });
        say('Settings saved.');
      } catch (err) {
        say(plain(err, 'The settings were not saved'), 'error');
      } finally {
        save.disabled = false;
      }
    } },
    h('dl', { class: 'meta' }, h('dt', {}, 'Provider'), h('dd', {}, p.provider), h('dt', {}, 'Repository'), h('dd', {}, p.repository)),
    events, h('label', { for: 'project-tier' }, 'Tier'), tier, h('label', { for: 'project-network' }, 'Network'), network, save, msg);
    const del = h('button', { type: 'button', class: 'danger', onclick: async () => {
      if (!confirm(`Delete project ${p.name}? Its secrets go with it; its runs stay readable by id.`)) return;
      try {
        await api.call('DELETE', path);
        navigate('/');
      } catch (err) {
        say(plain(err, 'The project was not deleted'), 'error');
      }
    } }, 'Delete project');
    body.replaceChildren(form, webhook(p),
      h('section', { class: 'card', 'aria-label': 'Delete the project' }, h('h2', {}, 'Delete'),
        h('p', {}, 'Owners may delete the project and its secrets; its runs stay readable by id.'), del));
    tierSelect(tier, p.tier, ctl.signal).catch((err) => { if (!ctl.signal.aborted) say(plain(err, 'Could not list the tiers'), 'error'); });
  }
  load();
  return () => ctl.abort();
}

// webhook shows a github project's repository webhook as GitHub last reported it.
function webhook(p) {
  if (p.provider !== 'github') return null;
  const w = p.webhook;
  const rows = [];
  if (!w) {
    rows.push(h('p', {}, 'No webhook is registered (the server needs a GitHub token and --public-url for it).'));
  } else {
    const dl = h('dl', { class: 'meta' }, h('dt', {}, 'Hook'), h('dd', {}, `#${w.id}`),
      h('dt', {}, 'Active'), h('dd', {}, w.active ? 'yes' : 'no (none of the events needs a delivery)'));
    const r = w.lastResponse;
    if (r) {
      dl.append(h('dt', {}, 'Last delivery'), h('dd', {}, r.code ? `HTTP ${r.code}` : 'none yet'),
        h('dt', {}, 'Status'), h('dd', {}, r.status || ''), h('dt', {}, 'Message'), h('dd', {}, r.message || ''));
    } else if (w.lastResponseUnavailable) {
      dl.append(h('dt', {}, 'Last delivery'), h('dd', {}, `unknown: ${w.lastResponseUnavailable}`));
    }
    rows.push(dl);
  }
  return h('section', { class: 'card', 'aria-label': 'Webhook' }, h('h2', {}, 'Webhook'), rows);
}
