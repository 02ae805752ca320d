// The public REST API, called with the signed-in user's token (Authorization: Bearer;
// the API takes no cookies). The token lives in sessionStorage, or in localStorage when
// the user chose to be remembered on this device; signing out forgets it in both.

const KEY = 'simpleci.token';

export function token() {
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';
}

export function signIn(tok, remember) {
  signOut();
  (remember ? localStorage : sessionStorage).setItem(KEY, tok.trim());
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

// takeFragmentToken stores a token handed over in the address's fragment
// (http://HOST/#token=..., printed by `simpleci dev`; a fragment is never sent to the
// server) and removes it from the address bar and the history.
export function takeFragmentToken() {
  const m = /^#token=([^&]+)$/.exec(location.hash);
  if (!m) return false;
  signIn(decodeURIComponent(m[1]), false);
  history.replaceState(history.state, '', location.pathname + location.search);
  return true;
}

// ApiError carries the API's {code, message} and the HTTP status.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// onUnauthorized is called when the API refuses the token (401): the app signs out.
let unauthorized = () => {};
export function onUnauthorized(fn) {
  unauthorized = fn;
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function failure(res, quiet) {
  let msg = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.message) msg = body.message;
  } catch {
    // not the API's JSON error: keep the status line
  }
  if (res.status === 401 && !quiet) unauthorized(msg);
  return new ApiError(res.status, msg);
}

// call sends one API request and returns its JSON body; errors throw ApiError.
export async function call(method, path, body, signal) {
  const opts = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }), signal };
  if (body !== undefined) opts.body = JSON.stringify(body);
  const res = await fetch(path, opts);
  if (!res.ok) throw await failure(res);
  const text = await res.text();
  return text ? JSON.parse(text) : {};
}

export const get = (path, signal) => call('GET', path, undefined, signal);

// verify checks that tok is a token the API takes, without keeping it or signing out.
export async function verify(tok) {
  const res = await fetch('/api/v1/projects?page_size=1', { headers: { Accept: 'application/json', Authorization: `Bearer ${tok.trim()}` } });
  if (!res.ok) throw await failure(res, true);
}

// qs builds a query string from the set values of params.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : '';
}

export const enc = encodeURIComponent;

// streamLogs reads GET /api/v1/runs/{run}/logs:stream (server-sent events) with fetch,
// since EventSource cannot send the Authorization header. onChunk gets each log chunk,
// onEnd is called once the log is complete. A dropped stream is resumed after a pause
// with Last-Event-ID (the last chunk's sequence), so no chunk is seen twice or lost.
// Returns a function that stops it.
export function streamLogs(run, { onChunk, onEnd, onError }) {
  const ctl = new AbortController();
  let last = '';
  let stopped = false;
  const stop = () => {
    stopped = true;
    ctl.abort();
  };
  (async () => {
    let delay = 1000;
    while (!stopped) {
      try {
        const h = headers({ Accept: 'text/event-stream' });
        if (last) h['Last-Event-ID'] = last;
        const res = await fetch(`/api/v1/runs/${enc(run)}/logs:stream`, { headers: h, signal: ctl.signal });
        if (!res.ok) throw await failure(res);
        delay = 1000;
        for await (const ev of sseEvents(res.body)) {
          if (ev.id) last = ev.id;
          if (ev.event === 'log') onChunk(JSON.parse(ev.data));
          else if (ev.event === 'end') {
            stopped = true;
            onEnd();
            return;
          } else if (ev.event === 'error') throw new ApiError(0, JSON.parse(ev.data).message);
        }
      } catch (err) {
        if (stopped) return;
        if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404)) {
          onError(err);
          return;
        }
        onError(err, true);
      }
      if (stopped) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  })();
  return stop;
}

// sseEvents parses a text/event-stream body into {event, id, data} records.
export async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let ev = { event: 'message', id: '', data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf[nl] === '\r' && buf[nl + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (ev.data.length) yield { event: ev.event, id: ev.id, data: ev.data.join('\n') };
          ev = { event: 'message', id: '', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let val = i < 0 ? '' : line.slice(i + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') ev.event = val;
        else if (field === 'data') ev.data.push(val);
        else if (field === 'id') ev.id = val;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
