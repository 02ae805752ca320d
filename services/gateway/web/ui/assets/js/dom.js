// DOM helpers. h() builds elements; text is always a text node (never parsed as HTML),
// so nothing the API returns (names, log text, reasons) can inject markup.

// h(tag, attrs, ...children): attrs keys starting with "on" add listeners, "class" sets
// className, a false or null attribute is left out, anything else is setAttribute.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// replace empties el and appends children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// link is an <a> the router follows without reloading the page.
export function link(href, ...children) {
  return h('a', { href }, ...children);
}

export function statusBadge(status) {
  const s = status || 'unknown';
  return h('span', { class: `badge st-${s}` }, s.replace('_', ' '));
}

// duration formats the time between two RFC 3339 stamps (to now when end is unset).
export function duration(start, end) {
  if (!start) return '';
  const ms = (end ? Date.parse(end) : Date.now()) - Date.parse(start);
  if (!(ms >= 0)) return '';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

// when shows a stamp as local date and time, with the full stamp as a tooltip.
export function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return h('time', { datetime: ts, title: d.toISOString() }, d.toLocaleString());
}

export function shortSha(sha) {
  return sha ? sha.slice(0, 7) : '';
}

// firstLine is a commit message's subject: its first line ('' for none). The message is
// user-controlled: callers put it in a text node (h), never in markup.
export function firstLine(msg) {
  return msg ? msg.split('\n', 1)[0].trim() : '';
}

// errorBox shows an API error in plain words.
export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err && err.message ? err.message : String(err));
}
