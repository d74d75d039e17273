// The dashboard's shell: sign-in, the tabs, polling. Everything shown is read from this
// node's API with the token the operator typed (kept in sessionStorage, cleared on sign-out).

import { api, token, ApiError } from './api.js';
import * as views from './views.js';
import { apiDocs } from './openapi.js';

const $ = (id) => document.getElementById(id);
const state = { tab: null, poll: null, follow: null, meta: null, apiRelease: null };

const TABS = {
  overview: (p) => views.overview(p),
  releases: (p) => views.releases(p),
  migrations: (p) => views.migrations(p),
  sync: (p) => views.sync(p),
  changelog: (p) => views.changelog(p),
  api: (p) => apiDocs(p, state),
};

// Sections read live while shown, and how often (ms).
const POLL = { sync: 5000 };
// Migrations are followed every second while signed in, whichever section is shown.
const MIGRATIONS_POLL = 1000;

function showLogin(message) {
  stopPolling();
  stopFollowing();
  $('app').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('token').focus();
}

function signOut() {
  token.clear();
  state.meta = null;
  for (const p of document.querySelectorAll('.panel')) p.replaceChildren();
  $('token').value = '';
  showLogin(null);
}

// A failure of a section: a rejected token sends the operator back to sign in, with the
// server's own words; anything else is shown above the section.
function failed(e) {
  if (e instanceof ApiError && e.unauthorised) {
    token.clear();
    showLogin(e.problem.detail || e.message);
    return;
  }
  const banner = $('app-error');
  banner.textContent = e instanceof ApiError ? `${e.problem.title || 'Error'}: ${e.message}` : String(e && e.message ? e.message : e);
  banner.hidden = false;
}

function stopPolling() {
  if (state.poll) clearTimeout(state.poll);
  state.poll = null;
}

function stopFollowing() {
  if (state.follow) clearTimeout(state.follow);
  state.follow = null;
}

// One look at the migrations: the section is redrawn (shown or not) and its tab says how many
// are in flight.
async function followMigrations() {
  state.follow = null;
  try {
    const report = await views.migrations($('panel-migrations'));
    $('panel-migrations').dataset.loaded = 'true';
    const running = report.types.filter((t) => t.migration).length;
    const tab = document.querySelector('#tabs [data-tab="migrations"]');
    tab.dataset.running = String(running);
    tab.textContent = running ? `Migrations (${running} running)` : 'Migrations';
  } catch (e) {
    failed(e);
    if (e instanceof ApiError && e.unauthorised) return;
  }
  if (!$('app').hidden && !state.follow) state.follow = setTimeout(followMigrations, MIGRATIONS_POLL);
}

async function show(tab) {
  if (!TABS[tab]) tab = 'overview';
  stopPolling();
  state.tab = tab;
  if (location.hash !== `#${tab}`) history.replaceState(null, '', `#${tab}`);
  for (const b of document.querySelectorAll('#tabs [data-tab]')) {
    const on = b.dataset.tab === tab;
    b.setAttribute('aria-selected', on ? 'true' : 'false');
    b.classList.toggle('active', on);
  }
  for (const p of document.querySelectorAll('.panel')) p.hidden = p.dataset.panel !== tab;
  const panel = $(`panel-${tab}`);
  $('app-error').hidden = true;
  await refresh(tab, panel);
}

async function refresh(tab, panel) {
  try {
    await TABS[tab](panel);
    panel.dataset.loaded = 'true';
  } catch (e) {
    failed(e);
    if (e instanceof ApiError && e.unauthorised) return;
  }
  if (POLL[tab] && state.tab === tab && !$('app').hidden) {
    state.poll = setTimeout(() => {
      if (state.tab === tab) refresh(tab, panel);
    }, POLL[tab]);
  }
}

async function enter() {
  $('login').hidden = true;
  $('app').hidden = false;
  try {
    const meta = await api('/meta');
    state.meta = meta;
    $('set-name').textContent = meta.schemaSet;
    // Node ids are long hex strings: the start tells nodes apart, the title holds all of it.
    $('node-info').textContent = `node ${String(meta.nodeId).slice(0, 8)} · mutatis ${meta.mutatis}`;
    $('node-info').title = `node ${meta.nodeId}`;
  } catch (e) {
    failed(e);
    return;
  }
  await show(location.hash.slice(1) || 'overview');
  if (!$('app').hidden && !state.follow) followMigrations();
}

async function signIn(ev) {
  ev.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  const button = $('sign-in');
  button.disabled = true;
  try {
    // An admin-only call: a reader's token is refused here (403), not half-way through.
    await api('/admin/migrations', { tok: t });
    token.set(t);
    $('token').value = '';
    $('login-error').hidden = true;
    await enter();
  } catch (e) {
    showLogin(e instanceof ApiError ? e.problem.detail || e.message : String(e));
  } finally {
    button.disabled = false;
  }
}

function start() {
  $('login-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  for (const b of document.querySelectorAll('#tabs [data-tab]')) {
    b.addEventListener('click', () => show(b.dataset.tab));
  }
  window.addEventListener('hashchange', () => {
    const tab = location.hash.slice(1);
    if (token.get() && tab !== state.tab) show(tab);
  });
  document.body.dataset.ready = 'true';
  if (token.get()) enter();
  else showLogin(null);
}

start();
