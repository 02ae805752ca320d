// Shared by the web UI's browser tests (ui_test.go runs each script with node): a
// headless Debian Chromium driven by playwright-core, a page that fails the test on any
// script error, console error or CSP violation, and small assertion helpers.
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.SIMPLECI_PLAYWRIGHT}/`);
const { chromium } = require('playwright-core');

export const base = process.env.SIMPLECI_BASE;
export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

// run launches the browser, calls fn({browser, page, problems}) and exits 0 when it
// returns and no page reported a problem, 1 otherwise (printing why). allowFailed lists
// the API answers a script provokes on purpose ({status, path}), whose "Failed to load
// resource" console line is then no problem.
export async function run(fn, { viewport = { width: 1280, height: 900 }, allowFailed = [] } = {}) {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const problems = [];
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  context.setDefaultTimeout(20000);
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    const failed = /Failed to load resource: the server responded with a status of (\d+)/.exec(m.text());
    const url = (m.location() && m.location().url) || '';
    if (failed && allowFailed.some((a) => String(a.status) === failed[1] && url.includes(a.path))) return;
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of (401|404)/.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  let code = 0;
  try {
    await fn({ browser, context, page, problems });
    if (problems.length) throw new Error(problems.join('\n'));
  } catch (e) {
    code = 1;
    console.error(e && e.stack ? e.stack : String(e));
    try {
      console.error(`URL: ${page.url()}\nPAGE TEXT:\n${(await page.locator('body').innerText()).slice(0, 4000)}`);
    } catch {
      // the page is gone
    }
  } finally {
    await browser.close();
  }
  process.exit(code);
}

export function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

// signIn opens the one-click link `simpleci dev` printed and waits for the projects.
export async function signIn(page, link) {
  await page.goto(link);
  await page.getByRole('heading', { name: 'Projects' }).waitFor();
}

// unlabelled lists the page's form controls and buttons that have no accessible name
// (a label, aria-label or text), which a screen reader could not announce.
export async function unlabelled(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button, a[href]')]
    .filter((el) => {
      if (el.closest('[hidden]')) return false;
      if (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) return false;
      if (el.labels && el.labels.length) return false;
      return !el.textContent.trim();
    })
    .map((el) => el.outerHTML.slice(0, 120)));
}

// lowContrast lists the page's visible text whose colour has less contrast against its
// background than WCAG 2 AA asks (4.5:1, large text 3:1), skipping disabled controls
// (WCAG exempts them) and the text inside step logs, whose colours the job's own ANSI
// codes choose.
export async function lowContrast(page) {
  return page.evaluate(() => {
    const rgba = (c) => { const m = c.match(/[\d.]+/g) || []; return m.map(Number).concat([1, 1, 1, 1]).slice(0, 4); };
    const lum = ([r, g, b]) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const over = (top, under) => { const a = top[3]; return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]); };
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c[3] > 0) layers.push(c);
        if (c[3] >= 1) break;
      }
      return layers.reduceRight((under, top) => over(top, under), [255, 255, 255, 1]);
    };
    const bad = [];
    for (const el of document.querySelectorAll('body *')) {
      if (el.closest('.log, [hidden]') || el.disabled || !el.getClientRects().length) continue;
      if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
      const st = getComputedStyle(el);
      if (st.visibility === 'hidden' || Number(st.opacity) === 0) continue;
      const bg = background(el);
      const fg = over(rgba(st.color), bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(st.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) bad.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
    }
    return bad;
  });
}

// checkAccessible fails when a control of the page has no accessible name, or some of
// its text too little contrast.
export async function checkAccessible(page, where) {
  const bad = await unlabelled(page);
  check(!bad.length, `${where}: controls without a label: ${bad.join(', ')}`);
  const dim = await lowContrast(page);
  check(!dim.length, `${where}: text with too little contrast: ${dim.join('; ')}`);
}

// runId is the run id in a run page's address.
export function runId(url) {
  const m = /\/runs\/([^/?#]+)/.exec(url);
  return m ? m[1] : '';
}
