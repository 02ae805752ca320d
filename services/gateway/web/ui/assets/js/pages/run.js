// A run: its status, trigger, timing and isolation line; its steps as an accordion, each
// with its log streamed live (ANSI colours, stderr marked, linkable line numbers such as
// #step-2-L40), follow mode, the raw log's download and a cancel button.
import * as api from '../api.js';
import { h, link, replace, statusBadge, when, duration, shortSha, errorBox } from '../dom.js';
import { ansiState, ansiSegments, styled } from '../ansi.js';
import { loadEvents } from './events.js';
import { navigate } from '../main.js';

const FINAL = new Set(['succeeded', 'failed', 'cancelled', 'timed_out', 'errored']);
const DONE = new Set(['succeeded', 'failed', 'skipped', 'cancelled', 'timed_out']); // a step's final statuses
const POLL_MS = 2000;
const LINES_PER_FRAME = 2000;
const BLOCK_LINES = 500;
const SETUP = 'setup'; // the runner's own lines (step -1): the isolation line and such

export function runPage(main, project, runId) {
  const base = `/projects/${api.enc(project)}`;
  const ctl = new AbortController();
  const head = h('div', { class: 'runhead' });
  const notice = h('div', { 'aria-live': 'polite' });
  const followBox = h('input', { id: 'follow', type: 'checkbox', checked: true });
  const tools = h('div', { class: 'tools' });
  const stepsEl = h('div', { class: 'steps' });
  const eventsEl = h('div', { id: 'panel-events', role: 'tabpanel', 'aria-labelledby': 'tab-events', hidden: true, tabindex: '0' });
  const stepsPanel = h('div', { id: 'panel-steps', role: 'tabpanel', 'aria-labelledby': 'tab-steps' }, tools, stepsEl);
  const tabs = tabList([['steps', 'Steps', stepsPanel], ['events', 'Events', eventsEl]], (name) => {
    if (name === 'events') loadEvents(eventsEl, runId, ctl.signal);
  });
  main.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, link('/', 'Projects'), ' / ', link(base, project), ' / ', `run`),
    head, notice, tabs, stepsPanel, eventsEl);

  const steps = new Map(); // key (index or SETUP) -> {section, button, badge, meta, log, lines, partial, ansi, chosen}
  let run = null;
  let attempt = 0;
  let target = null; // {key, line} from the address's fragment, until shown
  let stopStream = null;
  let timer = 0;
  let following = true;

  const streamNote = h('span', { class: 'muted', role: 'status', id: 'log-state' });
  const cancelBtn = h('button', { type: 'button', class: 'danger', onclick: async () => {
    cancelBtn.disabled = true;
    try {
      await api.call('POST', `/api/v1/runs/${api.enc(runId)}:cancel`, {});
      refresh();
    } catch (err) {
      notice.replaceChildren(errorBox(err));
      cancelBtn.disabled = false;
    }
  } }, 'Cancel run');
  // Re-run (POST /runs/{run}:rerun): a new run of the same commit, context and pipeline
  // snapshot, linked to this one; from the failed step where one failed.
  const rerun = (fromFailed) => async (ev) => {
    const btn = ev.currentTarget;
    btn.disabled = true;
    try {
      const r = await api.call('POST', `/api/v1/runs/${api.enc(runId)}:rerun`, fromFailed ? { fromFailed: true } : {});
      navigate(`${base}/runs/${api.enc(r.id)}`);
    } catch (err) {
      notice.replaceChildren(errorBox(err));
      btn.disabled = false;
    }
  };
  const again = h('button', { type: 'button', onclick: rerun(false) }, 'Re-run');
  const againFailed = h('button', { type: 'button', onclick: rerun(true) }, 'Re-run from failed step');
  const download = h('button', { type: 'button', onclick: () => downloadLog(runId, run, notice) }, 'Download raw log');
  followBox.addEventListener('change', () => {
    following = followBox.checked;
    if (following) for (const s of steps.values()) if (!s.log.hidden) s.log.scrollTop = s.log.scrollHeight;
  });
  tools.append(h('label', { class: 'check' }, followBox, ' Follow log'), download, cancelBtn, again, againFailed, streamNote);

  function setFollow(on) {
    following = on;
    followBox.checked = on;
  }

  function step(key, name) {
    let s = steps.get(key);
    if (s) return s;
    const id = `step-${key}`;
    const badge = h('span');
    const title = h('span', { class: 'name' }, name || (key === SETUP ? 'Set up' : `Step ${key}`));
    const meta = h('span', { class: 'dur muted' });
    const log = h('div', { class: 'log', id: `${id}-log`, role: 'log', 'aria-label': `Log of ${title.textContent}`, hidden: true, tabindex: '0' });
    const button = h('button', { type: 'button', class: 'steptoggle', 'aria-expanded': 'false', 'aria-controls': `${id}-log`,
      onclick: () => toggle(s, log.hidden, true) }, badge, title, meta);
    const reason = h('p', { class: 'reason', hidden: true });
    const section = h('section', { class: 'step', id, 'data-step': key }, h('h3', {}, button), reason, log);
    s = { key, section, button, badge, title, meta, reason, log, lines: 0, partial: '', last: null, block: null, blockLines: 0, frag: document.createDocumentFragment(), ansi: ansiState(), chosen: false, status: '', userAt: 0 };
    // The user scrolling up stops following; scrolling back to the end resumes it. Only
    // scrolls right after the user's own wheel, touch, key or mouse count, not the
    // page's scrolling to the end.
    log.addEventListener('scroll', () => {
      if (Date.now() - s.userAt > 1000) return;
      const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
      if (!atEnd && following) setFollow(false);
      else if (atEnd && !following) setFollow(true);
    });
    for (const ev of ['wheel', 'touchmove', 'keydown', 'mousedown']) log.addEventListener(ev, () => { s.userAt = Date.now(); }, { passive: true });
    steps.set(key, s);
    // Sections in order: set up first, then by index.
    const after = [...steps.values()].filter((o) => o !== s && order(o.key) > order(key)).sort((a, b) => order(a.key) - order(b.key))[0];
    stepsEl.insertBefore(section, after ? after.section : null);
    return s;
  }

  // toggle opens or closes a step's log; once the user did, the page no longer does.
  function toggle(s, open, byUser) {
    s.log.hidden = !open;
    s.button.setAttribute('aria-expanded', String(open));
    s.section.classList.toggle('open', open);
    if (byUser) s.chosen = true;
    if (open && following) scrollEnd(s);
  }

  function scrollEnd(s) {
    s.log.scrollTop = s.log.scrollHeight;
  }

  // Chunks are queued and drawn once per animation frame, at most LINES_PER_FRAME lines
  // a frame, so a long log replayed at once never blocks the page: the first lines show
  // at once and the rest follow while the page stays responsive.
  let pending = [];
  let frame = 0;
  let ended = null; // what to do once the queue is drawn after the log's end
  function queueChunk(c) {
    pending.push(c);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    const touched = new Set();
    let budget = LINES_PER_FRAME;
    while (pending.length && budget > 0) {
      const c = pending[0];
      const { s, done, lines } = addLines(c, budget);
      budget -= lines;
      touched.add(s);
      if (done) pending.shift();
    }
    for (const s of touched) {
      s.log.appendChild(s.frag);
      // A step printing now, live, is opened (unless the user chose otherwise).
      if (s.key !== SETUP && s.log.hidden && !s.chosen && run && !FINAL.has(run.status) && !DONE.has(s.status)) toggle(s, true);
      if (following && !s.log.hidden) scrollEnd(s);
    }
    if (target) showTarget();
    if (pending.length) frame = requestAnimationFrame(flush);
    else if (ended) {
      const f = ended;
      ended = null;
      f();
    }
  }

  // addLines adds up to budget lines of chunk c to its step's fragment; a chunk not done
  // keeps its place (c.rest, the lines still to add) for the next frame.
  function addLines(c, budget) {
    const a = c.attempt || 1;
    const key = (c.step ?? 0) < 0 ? SETUP : (c.step || 0);
    if (a > attempt) {
      // The run was requeued: its log starts again with the new attempt.
      if (attempt) for (const o of steps.values()) { o.log.replaceChildren(); o.frag = document.createDocumentFragment(); o.lines = 0; o.partial = ''; o.last = null; o.block = null; o.ansi = ansiState(); }
      attempt = a;
    }
    const s = step(key);
    if (a < attempt) return { s, done: true, lines: 0 };
    const stream = c.stream || 'stdout';
    if (!c.rest) {
      const parts = (c.text || '').split('\n');
      if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
      c.rest = parts;
      c.first = true;
    }
    let n = 0;
    while (c.rest.length && n < budget) {
      const raw = c.rest.shift();
      // A carriage return rewrites the line, as in a terminal: its last part is shown.
      const noCR = raw.replace(/\r+$/, '');
      const text = noCR.slice(noCR.lastIndexOf('\r') + 1);
      // The rest of a line whose start came in the previous chunk of the same stream.
      if (c.first && s.partial === stream && s.last) {
        c.first = false;
        appendText(s.last.lastChild, text, s.ansi);
        continue;
      }
      c.first = false;
      s.lines++;
      n++;
      const line = newLine(key, s.lines, stream);
      appendText(line.lastChild, text, s.ansi);
      // Lines go in blocks of BLOCK_LINES, each skipped by the browser's rendering while
      // out of view (content-visibility), so a long log costs little to lay out.
      if (!s.block || s.blockLines >= BLOCK_LINES) {
        s.block = h('div', { class: 'lines' });
        s.blockLines = 0;
        s.frag.appendChild(s.block);
      }
      s.block.appendChild(line);
      s.blockLines++;
      s.last = line;
    }
    if (c.rest.length) return { s, done: false, lines: n };
    s.partial = (c.text || '').endsWith('\n') ? '' : stream;
    return { s, done: true, lines: n };
  }

  function showTarget() {
    if (!target) return;
    const s = steps.get(target.key);
    if (!s) return;
    if (s.log.hidden) toggle(s, true, true);
    const el = target.line ? document.getElementById(`step-${target.key}-L${target.line}`) : s.section;
    if (!el) return; // not streamed yet: tried again as lines come
    document.querySelectorAll('.line.hl').forEach((l) => l.classList.remove('hl'));
    if (target.line) el.classList.add('hl');
    el.scrollIntoView({ block: 'center' });
    target = null;
  }

  function readHash() {
    const m = /^#step-(setup|\d+)(?:-L(\d+))?$/.exec(location.hash);
    if (!m) return;
    target = { key: m[1] === SETUP ? SETUP : Number(m[1]), line: m[2] ? Number(m[2]) : 0 };
    setFollow(false); // the user asked for a place in the log: stay there
    showTarget();
  }
  window.addEventListener('hashchange', readHash);

  function renderRun(r) {
    run = r;
    document.title = `${project} #${r.number || ''} ${r.status || ''} · SimpleCI`;
    const trigger = [r.event || 'manual', r.actor ? ` by ${r.actor}` : '', r.branch || r.ref ? ` on ${r.branch || r.ref}` : '',
      r.sha ? ' at ' : ''];
    replace(head,
      h('div', { class: 'titlebar' }, h('h1', {}, `Run #${r.number || ''}`), statusBadge(r.status)),
      h('dl', { class: 'meta' },
        h('dt', {}, 'Trigger'), h('dd', {}, trigger, r.sha ? h('code', { title: r.sha }, shortSha(r.sha)) : null),
        r.rerunOf ? [h('dt', {}, 'Re-run of'), h('dd', {}, link(`${base}/runs/${api.enc(r.rerunOf)}`, `run #${r.rerunOfNumber || ''}`))] : null,
        r.commitMessage ? [h('dt', {}, 'Commit message'), h('dd', {}, h('pre', { class: 'commit-message' }, r.commitMessage))] : null,
        h('dt', {}, 'Created'), h('dd', {}, when(r.createdAt)),
        r.startedAt ? [h('dt', {}, 'Started'), h('dd', {}, when(r.startedAt))] : null,
        r.startedAt ? [h('dt', {}, 'Duration'), h('dd', {}, duration(r.startedAt, r.finishedAt), r.finishedAt ? '' : ' so far')] : null,
        h('dt', {}, 'Tier'), h('dd', {}, r.tier || 'standard'),
        (r.attempt || 1) > 1 ? [h('dt', {}, 'Attempt'), h('dd', {}, `${r.attempt} (requeued after its runner was lost)`)] : null,
        h('dt', {}, 'Isolation'), h('dd', { class: 'isolation' }, r.isolation || (FINAL.has(r.status) ? 'not reported' : 'not reported yet'))),
      explain(r));
    cancelBtn.hidden = FINAL.has(r.status);
    again.hidden = !FINAL.has(r.status) || !r.startedAt; // a run that errored before it started has no pipeline to run again
    againFailed.hidden = again.hidden || !(r.steps || []).some((st) => ['failed', 'timed_out', 'cancelled'].includes(st.status));
    for (const st of r.steps || []) {
      const key = st.index || 0;
      const s = step(key, st.name);
      s.title.textContent = st.name;
      s.log.setAttribute('aria-label', `Log of ${st.name}`);
      replace(s.badge, statusBadge(st.status));
      s.meta.textContent = duration(st.startedAt, st.finishedAt);
      s.reason.hidden = !st.reason;
      s.reason.textContent = st.reason ? `${st.status === 'skipped' ? 'Skipped' : 'Why'}: ${st.reason}` : '';
      // Open the running step and a failed one, and close a step that went well once it
      // is done, unless the user chose.
      if (!s.chosen && s.log.hidden && (st.status === 'running' || st.status === 'failed' || st.status === 'timed_out')) toggle(s, true);
      else if (!s.chosen && !s.log.hidden && (st.status === 'succeeded' || st.status === 'skipped')) toggle(s, false);
      s.status = st.status;
    }
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      renderRun(await api.get(`/api/v1/runs/${api.enc(runId)}`, ctl.signal));
    } catch (err) {
      if (ctl.signal.aborted) return;
      notice.replaceChildren(errorBox(err));
    }
    if (!ctl.signal.aborted && !(run && FINAL.has(run.status))) timer = setTimeout(refresh, POLL_MS);
  }

  refresh().then(() => {
    if (ctl.signal.aborted || !run) return;
    readHash();
    streamNote.textContent = 'Connecting to the log…';
    stopStream = api.streamLogs(runId, {
      onChunk: (c) => { streamNote.textContent = FINAL.has(run.status) ? '' : 'Live'; queueChunk(c); },
      onEnd: () => {
        // Said once every chunk is drawn.
        const finish = () => {
          streamNote.textContent = 'Log complete';
          if (!steps.size) stepsEl.append(h('p', { class: 'muted' }, 'This run printed nothing.'));
          if (target) showTarget();
        };
        if (pending.length || frame) ended = finish;
        else finish();
      },
      onError: (err, retrying) => { streamNote.textContent = retrying ? `Log stream interrupted (${err.message}); reconnecting…` : `Log: ${err.message}`; },
    });
  });

  return () => {
    ctl.abort();
    clearTimeout(timer);
    cancelAnimationFrame(frame);
    if (stopStream) stopStream();
    window.removeEventListener('hashchange', readHash);
  };
}

// tabList makes an accessible tab list: each tab shows its panel and hides the others;
// the arrow keys move between tabs. onSelect gets the chosen tab's name.
function tabList(items, onSelect) {
  const buttons = items.map(([name, label, panel]) => h('button', { type: 'button', role: 'tab', id: `tab-${name}`,
    'aria-controls': panel.id, 'aria-selected': String(name === items[0][0]), tabindex: name === items[0][0] ? '0' : '-1',
    onclick: () => select(name) }, label));
  function select(name) {
    items.forEach(([n, , panel], i) => {
      const on = n === name;
      panel.hidden = !on;
      buttons[i].setAttribute('aria-selected', String(on));
      buttons[i].tabIndex = on ? 0 : -1;
      if (on) buttons[i].focus();
    });
    onSelect(name);
  }
  const list = h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Run views' }, buttons);
  list.addEventListener('keydown', (e) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0 || (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft')) return;
    e.preventDefault();
    select(items[(i + (e.key === 'ArrowRight' ? 1 : items.length - 1)) % items.length][0]);
  });
  return list;
}

// newLine makes a log line's element: <div class="line STREAM" id="step-K-LN"><a
// class="ln" href="#step-K-LN">N</a><span class="txt"></span></div>, cloned from a
// template, as a long log makes many.
const lineTemplate = h('div', {}, h('a', { class: 'ln' }), h('span', { class: 'txt' }));
function newLine(key, n, stream) {
  const line = lineTemplate.cloneNode(true);
  const id = `step-${key}-L${n}`;
  line.className = `line ${stream}`;
  line.id = id;
  if (stream === 'stderr') line.title = 'stderr';
  const a = line.firstChild;
  a.href = `#${id}`;
  a.textContent = n;
  return line;
}

function order(key) {
  return key === SETUP ? -1 : key;
}

function appendText(el, text, state) {
  if (!text.includes('\x1b') && !styled(state)) {
    el.appendChild(document.createTextNode(text)); // the common case, no colours
    return;
  }
  for (const seg of ansiSegments(text, state)) {
    el.appendChild(seg.cls ? h('span', { class: seg.cls }, seg.text) : document.createTextNode(seg.text));
  }
}

// explain says in plain words why a run ended the way it did.
function explain(r) {
  // A reason that only repeats the status ("cancelled") adds nothing.
  const why = r.reason && r.reason.toLowerCase() !== (r.status || '').replace('_', ' ') ? `: ${r.reason}` : '.';
  const say = {
    queued: r.reason ? `Waiting${why}` : '',
    errored: `The run could not start${why}`,
    timed_out: `The run took longer than its tier allows${why}`,
    cancelled: `The run was cancelled${why}`,
    failed: r.reason ? `The run failed${why}` : '',
  }[r.status];
  return say ? h('p', { class: r.status === 'queued' ? 'notice' : 'error', role: 'status' }, say) : null;
}

// downloadLog fetches the stored log page by page and saves it as a text file, as the
// steps printed it (ANSI escapes included).
async function downloadLog(runId, run, notice) {
  const parts = [];
  let after = '0';
  try {
    for (let i = 0; i < 100000; i++) {
      const res = await api.get(`/api/v1/runs/${api.enc(runId)}/logs?after=${api.enc(after)}`);
      for (const c of res.chunks || []) parts.push(c.text || '');
      if (!res.nextAfter || res.nextAfter === '0' || res.nextAfter === after) break;
      after = res.nextAfter;
    }
  } catch (err) {
    notice.replaceChildren(errorBox(err));
    return;
  }
  const url = URL.createObjectURL(new Blob(parts, { type: 'text/plain' }));
  const a = h('a', { href: url, download: `run-${run && run.number ? run.number : runId}.log` });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
