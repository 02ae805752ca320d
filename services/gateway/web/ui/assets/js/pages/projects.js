// The projects of the caller's organisation, each with its last run's status.
import * as api from '../api.js';
import { h, link, statusBadge, when, errorBox } from '../dom.js';

export function projectsPage(main) {
  const ctl = new AbortController();
  document.title = 'Projects · SimpleCI';
  const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading projects…'));
  main.append(h('div', { class: 'titlebar' }, h('h1', {}, 'Projects'), link('/new-project', 'New project')), list);
  load(list, ctl.signal, location.search);
  return () => ctl.abort();
}

async function load(list, signal, search) {
  const pageToken = new URLSearchParams(search).get('page_token') || '';
  let res;
  try {
    res = await api.get(`/api/v1/projects${api.qs({ page_size: 50, page_token: pageToken })}`, signal);
  } catch (err) {
    if (!signal.aborted) list.replaceChildren(errorBox(err));
    return;
  }
  const projects = res.projects || [];
  if (!projects.length) {
    list.replaceChildren(h('p', {}, 'No projects yet. ', link('/new-project', 'Create one.')));
    return;
  }
  const rows = projects.map((p) => {
    const last = h('td', { class: 'last' }, h('span', { class: 'muted' }, '…'));
    lastRun(p, last, signal);
    return h('tr', {},
      h('th', { scope: 'row' }, link(`/projects/${api.enc(p.name)}`, p.name)),
      h('td', { class: 'wrap' }, p.repository || ''),
      last,
      h('td', {}, link(`/projects/${api.enc(p.name)}/secrets`, 'Secrets'), ' ',
        link(`/projects/${api.enc(p.name)}/settings`, 'Settings')));
  });
  list.replaceChildren(h('table', { class: 'list' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Project'), h('th', { scope: 'col' }, 'Repository'),
      h('th', { scope: 'col' }, 'Last run'), h('th', { scope: 'col' }, h('span', { class: 'sr' }, 'Settings')))),
    h('tbody', {}, rows)));
  if (res.nextPageToken) list.append(h('p', {}, link(`/${api.qs({ page_token: res.nextPageToken })}`, 'Next page')));
}

async function lastRun(p, cell, signal) {
  try {
    const res = await api.get(`/api/v1/projects/${api.enc(p.id)}/runs?page_size=1`, signal);
    const r = (res.runs || [])[0];
    cell.replaceChildren(r
      ? h('span', {}, link(`/projects/${api.enc(p.name)}/runs/${api.enc(r.id)}`, statusBadge(r.status), ` #${r.number}`), ' ', when(r.createdAt))
      : h('span', { class: 'muted' }, 'no runs yet'));
  } catch (err) {
    if (!signal.aborted) cell.replaceChildren(h('span', { class: 'error' }, err.message));
  }
}
