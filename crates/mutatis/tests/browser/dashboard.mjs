// The operator's dashboard (/ui) in headless Chromium, driven by playwright-core; run by
// crates/mutatis/tests/dashboard.rs, which starts the node, makes the requests whose usage the
// page must show, starts the migration the page must follow, and checks what the page reports
// against the node's API.
//
// Environment: DASH_URL (the node, http://HOST:PORT), DASH_TOKEN (an admin token),
// DASH_WRONG_TOKEN (a well-formed token the node does not know), DASH_SHOTS (a folder for the
// screenshots), CHROMIUM (the browser's executable).
//
// Talks to the test on stdout, one JSON object a line, and reads its go-aheads on stdin:
//   {"phase":"login", ...}       the page without a token: what is visible
//   {"phase":"wrong", ...}       the error the login form shows for a wrong token
//   {"phase":"releases", ...}    signed in; the releases table as shown
//   {"phase":"migrations"}       the migrations section is open; waits for a line ("started")
//   {"phase":"migrated", ...}    every progress the page showed, up to the switch
//   {"phase":"sync", ...}        the webhooks as shown
//   {"phase":"changelog", ...}   the changelog as shown
//   {"phase":"api", ...}         the API page of a release as shown
//   {"phase":"done", ...}        signed out again
// Any failure, a console error or an uncaught page error: {"phase":"error","message":...}
// and exit code 1.

import { chromium } from 'playwright-core';
import { closeInput, nextLine, say } from './test_channel.mjs';
import path from 'node:path';

const base = process.env.DASH_URL;
const adminToken = process.env.DASH_TOKEN;
const wrongToken = process.env.DASH_WRONG_TOKEN;
const shots = process.env.DASH_SHOTS;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// Console errors and page errors, with the phase they happened in.
const problems = [];
let phase = 'start';
// The one console error a phase expects: the browser logs the 401 of a refused token.
let expectedConsole = null;

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--headless=new'],
});
let exitCode = 0;
try {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expectedConsole && expectedConsole.test(m.text())) {
      expectedConsole.seen = (expectedConsole.seen || 0) + 1;
      return;
    }
    problems.push(`${phase}: console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${phase}: page error: ${e.message}`));
  const shot = (name) => page.screenshot({ path: path.join(shots, name) });
  const visible = (sel) => page.locator(sel).isVisible();
  const check = () => {
    if (problems.length) throw new Error(problems.join('\n'));
  };

  // Without a token: the login form and nothing else.
  phase = 'login';
  await page.goto(`${base}/ui/`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('#login', { state: 'visible' });
  await shot('dashboard-login.png');
  say({
    phase,
    loginVisible: await visible('#login'),
    appVisible: await visible('#app'),
    panelsWithContent: await page.evaluate(
      () => [...document.querySelectorAll('.panel')].filter((p) => p.childElementCount > 0).length,
    ),
  });
  check();

  // A wrong token: the server's detail on the form, still no dashboard.
  phase = 'wrong';
  expectedConsole = /status of 401/;
  await page.fill('#token', wrongToken);
  await page.click('#sign-in');
  await page.waitForSelector('#login-error', { state: 'visible' });
  await shot('dashboard-wrong-token.png');
  say({
    phase,
    error: await page.textContent('#login-error'),
    appVisible: await visible('#app'),
    stored: await page.evaluate(() => sessionStorage.length),
    consoleRefusals: expectedConsole.seen || 0,
  });
  expectedConsole = null;
  check();

  // The admin token: the dashboard, then the releases with their usage.
  phase = 'overview';
  await page.fill('#token', adminToken);
  await page.click('#sign-in');
  await page.waitForSelector('#panel-overview[data-loaded="true"]');
  await page.waitForSelector('#panel-overview svg.graph');
  await shot('dashboard-types.png');
  check();

  phase = 'releases';
  await page.click('#tabs [data-tab="releases"]');
  await page.waitForSelector('#releases-table');
  await shot('dashboard-releases.png');
  const rows = await page.$$eval('#releases-table tbody tr', (trs) =>
    trs.map((tr) => {
      const cell = (f) => tr.querySelector(`[data-field="${f}"]`).textContent.trim();
      return {
        release: tr.dataset.release,
        requests7d: cell('requests7d'),
        requests30d: cell('requests30d'),
        share30d: cell('share30d'),
        tokens30d: cell('tokens30d'),
        lastSeen: cell('lastSeen'),
        verdict: cell('verdict'),
      };
    }),
  );
  const bars = await page.$$eval('#panel-releases svg.chart rect', (r) => r.length);
  say({ phase, rows, bars });
  check();

  // Migrations: opened first, then the test starts one; every progress shown is kept.
  phase = 'migrations';
  await page.click('#tabs [data-tab="migrations"]');
  await page.waitForSelector('.migration[data-type]');
  say({ phase });
  await nextLine();
  const samples = [];
  let midShot = false;
  const deadline = Date.now() + 180000;
  let last = null;
  for (;;) {
    const now = await page.evaluate(() => {
      const m = document.querySelector('.migration[data-type="todo"]');
      if (!m) return null;
      const bar = m.querySelector('.progress');
      return {
        state: m.dataset.state,
        done: Number(bar.dataset.done),
        total: Number(bar.dataset.total),
        width: bar.querySelector('.progress-fill').style.width,
        text: m.textContent.replace(/\s+/g, ' ').trim(),
      };
    });
    if (now) {
      const key = `${now.state}/${now.done}/${now.total}`;
      if (key !== last) {
        samples.push(now);
        last = key;
      }
      if (now.state === 'running' && now.done > 0 && !midShot) {
        midShot = true;
        await shot('dashboard-migration-running.png');
      }
      if (now.state === 'switched') break;
    }
    if (Date.now() > deadline) throw new Error(`the migration never showed its switch: ${JSON.stringify(samples)}`);
    await page.waitForTimeout(50);
  }
  await shot('dashboard-migration-switched.png');
  say({ phase: 'migrated', samples });
  check();

  phase = 'sync';
  await page.click('#tabs [data-tab="sync"]');
  await page.waitForSelector('#panel-sync[data-loaded="true"]');
  await shot('dashboard-sync.png');
  const webhooks = await page.$$eval('#webhooks-table tbody tr', (trs) =>
    trs.map((tr) => ({
      id: tr.dataset.webhook,
      failures: tr.querySelector('[data-field="failures"]').textContent.trim(),
      lastError: tr.querySelector('[data-field="lastError"]').textContent.trim(),
    })),
  );
  say({ phase, webhooks });
  check();

  phase = 'changelog';
  await page.click('#tabs [data-tab="changelog"]');
  await page.waitForSelector('#panel-changelog .change');
  await shot('dashboard-changelog.png');
  const changes = await page.$$eval('#panel-changelog .card', (cards) =>
    cards.map((c) => ({
      release: c.querySelector('.card-head').dataset.release,
      types: [...c.querySelectorAll('.change')].map((ch) => ({
        type: ch.dataset.type,
        breaking: ch.dataset.breaking === 'true',
        changes: [...ch.querySelectorAll('.change-head + .change-list li')].map((li) => li.textContent),
      })),
    })),
  );
  say({ phase, releases: changes });
  check();

  phase = 'api';
  await page.click('#tabs [data-tab="api"]');
  await page.waitForSelector('#api-release');
  await page.selectOption('#api-release', '4');
  await page.waitForSelector('#api-doc h2[data-release="4"]');
  // One operation opened, as a reader would.
  await page.click('#api-doc details.op >> nth=0');
  await shot('dashboard-api.png');
  const api = await page.evaluate(() => ({
    title: document.querySelector('#api-doc h2').textContent,
    version: document.querySelector('#api-doc h2').dataset.version,
    operations: [...document.querySelectorAll('#api-doc details.op')].map(
      (d) => `${d.dataset.method.toUpperCase()} ${d.dataset.path}`,
    ),
    schemas: document.querySelectorAll('#api-doc details.schema').length,
  }));
  say({ phase, ...api });
  check();

  // Signing out forgets the token.
  phase = 'done';
  await page.click('#sign-out');
  await page.waitForSelector('#login', { state: 'visible' });
  const afterReload = await (async () => {
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    return { loginVisible: await visible('#login'), appVisible: await visible('#app') };
  })();
  say({ phase, stored: await page.evaluate(() => sessionStorage.length), ...afterReload });
  check();
} catch (e) {
  exitCode = 1;
  say({ phase: 'error', during: phase, message: String(e && e.stack ? e.stack : e), problems });
} finally {
  await browser.close();
  closeInput();
}
process.exit(exitCode);
