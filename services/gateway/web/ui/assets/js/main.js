// The web UI's router: history-API paths, each rendered by a page module into <main>.
// A page returns a cleanup function (stops its polling and log streams) that runs when
// the user leaves it.
import * as api from './api.js';
import { h, replace, link } from './dom.js';
import { signInPage } from './pages/signin.js';
import { projectsPage } from './pages/projects.js';
import { runsPage } from './pages/runs.js';
import { runPage } from './pages/run.js';
import { secretsPage } from './pages/secrets.js';
import { newProjectPage, settingsPage } from './pages/project.js';

const routes = [
  [/^\/$/, projectsPage],
  [/^\/signin$/, signInPage],
  [/^\/new-project$/, newProjectPage],
  [/^\/projects\/([^/]+)$/, runsPage],
  [/^\/projects\/([^/]+)\/runs\/([^/]+)$/, runPage],
  [/^\/projects\/([^/]+)\/secrets$/, secretsPage],
  [/^\/projects\/([^/]+)\/settings$/, settingsPage],
];

const main = document.getElementById('main');
let cleanup = null;
let notice = '';

export function navigate(path, { replace: rep = false } = {}) {
  if (rep) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

// setNotice shows a message on the next page rendered (e.g. why the user was signed out).
export function setNotice(msg) {
  notice = msg;
}

function nav() {
  const el = document.getElementById('nav');
  if (!api.token()) return replace(el);
  return replace(
    el,
    link('/', 'Projects'),
    h('button', { type: 'button', class: 'link', onclick: () => {
      api.signOut();
      setNotice('You are signed out; the token is forgotten by this browser.');
      navigate('/signin');
    } }, 'Sign out'),
  );
}

let rendered = ''; // the path and query of the page shown

function render() {
  rendered = location.pathname + location.search;
  if (cleanup) cleanup();
  cleanup = null;
  const path = location.pathname.replace(/\/+$/, '') || '/';
  if (!api.token() && path !== '/signin') {
    const back = location.pathname + location.search + location.hash;
    history.replaceState(null, '', `/signin${back !== '/' ? api.qs({ next: back }) : ''}`);
    return render();
  }
  nav();
  for (const [re, page] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    const params = m.slice(1).map(decodeURIComponent);
    const msg = notice;
    notice = '';
    replace(main);
    if (msg) main.appendChild(h('p', { class: 'notice', role: 'status' }, msg));
    cleanup = page(main, ...params) || null;
    return;
  }
  replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', link('/', 'Go to the projects.')));
}

api.onUnauthorized((msg) => {
  api.signOut();
  setNotice(`Signed out: the API refused the token (${msg}).`);
  if (location.pathname === '/signin') return render();
  const back = location.pathname + location.search + location.hash;
  navigate(`/signin${api.qs({ next: back })}`, { replace: true });
});

// Links inside the app change the page without a reload; modified clicks, downloads,
// other origins and plain fragment links keep the browser's behaviour.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.hasAttribute('download') || a.target || a.origin !== location.origin) return;
  if (a.pathname === location.pathname && a.search === location.search && a.hash) return;
  e.preventDefault();
  navigate(a.pathname + a.search + a.hash);
});
// Back and forward render the page they reach; a change of the fragment alone (a click
// on a line number fires popstate too) is the page's own business (hashchange).
window.addEventListener('popstate', () => {
  if (location.pathname + location.search !== rendered) render();
});

api.takeFragmentToken();
render();
