// A project's runs, newest first: filters (status, event, branch, dates) kept in the
// address's query so a filtered list can be shared and reloaded, paging, a manual
// trigger, and a refresh every few seconds while the page is visible.
import * as api from '../api.js';
import { h, link, statusBadge, when, duration, shortSha, firstLine, errorBox } from '../dom.js';
import { navigate } from '../main.js';

export const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out', 'errored'];
export const EVENTS = ['push', 'pull_request', 'tag', 'manual', 'schedule'];
const REFRESH_MS = 3000;

export function runsPage(main, project) {
  const q = new URLSearchParams(location.search);
  const filters = { status: q.get('status') || '', event: q.get('event') || '', branch: q.get('branch') || '',
    since: q.get('since') || '', until: q.get('until') || '' };
  const pageToken = q.get('page_token') || '';
  const size = /^\d+$/.test(q.get('page_size') || '') ? Math.min(Math.max(Number(q.get('page_size')), 1), 200) : 25;
  const base = `/projects/${api.enc(project)}`;
  document.title = `${project} · SimpleCI`;

  const select = (name, label, options) => h('div', { class: 'field' },
    h('label', { for: `f-${name}` }, label),
    h('select', { id: `f-${name}`, name }, h('option', { value: '' }, 'any'),
      options.map((o) => h('option', { value: o, selected: filters[name] === o }, o.replace('_', ' ')))));
  const input = (name, label, type) => h('div', { class: 'field' },
    h('label', { for: `f-${name}` }, label),
    h('input', { id: `f-${name}`, name, type, value: filters[name] }));
  const form = h('form', { class: 'filters', 'aria-label': 'Filter runs', onsubmit: (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    navigate(`${base}${api.qs(f)}`);
  } },
  select('status', 'Status', STATUSES), select('event', 'Event', EVENTS),
  input('branch', 'Branch', 'text'), input('since', 'From', 'date'), input('until', 'To', 'date'),
  h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Filter'),
    Object.values(filters).some(Boolean) ? link(base, 'Clear') : null));

  const triggerMsg = h('p', { role: 'status', class: 'muted' });
  const ref = h('input', { id: 'ref', name: 'ref', type: 'text', placeholder: 'default branch' });
  const trigger = h('form', { class: 'trigger', 'aria-label': 'Run the pipeline', onsubmit: async (e) => {
    e.preventDefault();
    triggerMsg.textContent = 'Starting…';
    try {
      const r = await api.call('POST', `/api/v1/projects/${api.enc(project)}/runs`, ref.value.trim() ? { ref: ref.value.trim() } : {});
      navigate(`${base}/runs/${api.enc(r.id)}`);
    } catch (err) {
      triggerMsg.textContent = `Could not start a run: ${err.message}`;
      triggerMsg.className = 'error';
    }
  } }, h('label', { for: 'ref' }, 'Ref'), ref, h('button', { type: 'submit' }, 'Run pipeline'), triggerMsg);

  // Not a live region: it is redrawn every few seconds while runs are running.
  const list = h('div', { id: 'runs', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading runs…'));
  main.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/', 'Projects'), ' / ', project),
    h('div', { class: 'titlebar' }, h('h1', {}, project), link(`${base}/secrets`, 'Secrets'), link(`${base}/settings`, 'Settings')),
    trigger, form, list);

  const ctl = new AbortController();
  let timer = 0;
  const params = { ...filters, since: day(filters.since, false), until: day(filters.until, true), page_size: size, page_token: pageToken };
  let shown = '';
  const load = async () => {
    clearTimeout(timer);
    try {
      const res = await api.get(`/api/v1/projects/${api.enc(project)}/runs${api.qs(params)}`, ctl.signal);
      // Redrawn only when something changed (a running run's duration does), keeping
      // the keyboard focus on the link it was on.
      const json = JSON.stringify(res);
      if (json !== shown || (res.runs || []).some((r) => !r.finishedAt)) {
        shown = json;
        const focused = list.contains(document.activeElement) ? document.activeElement.getAttribute('href') : null;
        show(list, res, base, filters);
        if (focused) {
          const again = [...list.querySelectorAll('a[href]')].find((a) => a.getAttribute('href') === focused);
          if (again) again.focus();
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
      list.replaceChildren(errorBox(err));
    }
    list.setAttribute('aria-busy', 'false');
    if (!ctl.signal.aborted) timer = setTimeout(tick, REFRESH_MS);
  };
  // Refreshed only while the page is visible; coming back refreshes at once.
  const tick = () => { if (document.visibilityState === 'visible') load(); else timer = setTimeout(tick, REFRESH_MS); };
  const onVisible = () => { if (document.visibilityState === 'visible') load(); };
  document.addEventListener('visibilitychange', onVisible);
  load();
  return () => {
    ctl.abort();
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisible);
  };
}

// day turns a date input's YYYY-MM-DD into the API's RFC 3339 bound, in the browser's
// time zone: the start of the day, or for "To" the end of it.
function day(d, end) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(d)) return '';
  const t = new Date(`${d}T00:00:00`);
  if (end) t.setDate(t.getDate() + 1);
  return new Date(t.getTime() - (end ? 1000 : 0)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function show(list, res, base, filters) {
  const runs = res.runs || [];
  if (!runs.length) {
    list.replaceChildren(h('p', {}, Object.values(filters).some(Boolean) ? 'No runs match these filters.' : 'No runs yet: start one with Run pipeline.'));
    return;
  }
  const col = (t) => h('th', { scope: 'col' }, t);
  const table = h('table', { class: 'list runs' },
    h('thead', {}, h('tr', {}, col('Status'), col('Run'), col('Event'), col('Branch'), col('Commit'), col('Actor'), col('Duration'), col('Started'))),
    h('tbody', {}, runs.map((r) => h('tr', { 'data-run': r.id, 'data-event': r.event, 'data-status': r.status },
      h('td', { 'data-label': 'Status' }, statusBadge(r.status)),
      h('th', { scope: 'row', 'data-label': 'Run' }, link(`${base}/runs/${api.enc(r.id)}`, `#${r.number}`)),
      h('td', { 'data-label': 'Event', class: 'event' }, r.event || ''),
      h('td', { 'data-label': 'Branch', class: 'wrap' }, r.branch || r.ref || ''),
      h('td', { 'data-label': 'Commit', class: 'wrap' }, h('code', { title: r.sha || '' }, shortSha(r.sha)),
        r.commitMessage ? [' ', h('span', { class: 'commit-message', title: r.commitMessage }, firstLine(r.commitMessage))] : null),
      h('td', { 'data-label': 'Actor' }, r.actor || ''),
      h('td', { 'data-label': 'Duration' }, duration(r.startedAt, r.finishedAt)),
      h('td', { 'data-label': 'Started' }, when(r.startedAt || r.createdAt))))));
  const pager = h('p', { class: 'pager' });
  const here = new URLSearchParams(location.search);
  if (here.get('page_token')) {
    here.delete('page_token');
    pager.append(link(`${base}${here.size ? `?${here}` : ''}`, 'Newest runs'), ' ');
  }
  if (res.nextPageToken) {
    const next = new URLSearchParams(location.search);
    next.set('page_token', res.nextPageToken);
    pager.append(link(`${base}?${next}`, 'Older runs'));
  }
  list.replaceChildren(table, pager);
}
