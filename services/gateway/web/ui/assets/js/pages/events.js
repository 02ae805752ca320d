// A run's recorded events (GET /api/v1/runs/{run}/events), for the run page's Events tab:
// version, type, time, and the event itself as JSON, shown as text.
import * as api from '../api.js';
import { h, when, errorBox } from '../dom.js';

export async function loadEvents(panel, runId, signal) {
  panel.setAttribute('aria-busy', 'true');
  try {
    const res = await api.get(`/api/v1/runs/${api.enc(runId)}/events`, signal);
    const events = res.events || [];
    panel.replaceChildren(events.length
      ? h('ol', { class: 'events' }, events.map((e) => h('li', { 'data-type': shortType(e.type) },
        h('details', {},
          h('summary', {}, h('span', { class: 'ev-v muted' }, `${e.version || ''}`), ' ', h('strong', {}, shortType(e.type)), ' ', when(e.time)),
          h('pre', { class: 'payload' }, JSON.stringify(e.payload || {}, null, 2))))))
      : h('p', {}, 'No events recorded.'));
  } catch (err) {
    if (!signal.aborted) panel.replaceChildren(errorBox(err));
  }
  panel.setAttribute('aria-busy', 'false');
}

// shortType is the event's type without its package: RunQueued for simpleci.events.v1.RunQueued.
function shortType(t) {
  return (t || '').split('.').pop();
}
