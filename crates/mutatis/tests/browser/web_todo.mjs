// examples/web-todo in headless Chromium, driven by playwright-core; run by
// crates/mutatis/tests/browser.rs, which starts the node and checks what it holds.
//
// Environment: WEB_TODO_URL (the page, with ?token= and perhaps ?server=), WEB_TODO_SHOTS (a
// folder for the screenshots), CHROMIUM (the browser's executable), WEB_TODO_MODE (`cross`:
// the page talks to a node on another origin; it adds one todo online and says
// {"phase":"cross", ...}).
//
// Talks to the test on stdout, one JSON object a line:
//   {"phase":"synced", ...}  the page is loaded, todos were added offline and the page is
//                            back online (the test then checks the node holds them);
// then waits for a line on stdin: "locked" (the test restarted the node with release 4
// past its sunset, on the same address) or anything else to stop;
//   {"phase":"locked", ...}  what the reloaded page shows.
// Any failure: {"phase":"error","message":...} and exit code 1.

import { chromium } from 'playwright-core';
import { closeInput, nextLine, say } from './test_channel.mjs';
import path from 'node:path';

const url = process.env.WEB_TODO_URL;
const shots = process.env.WEB_TODO_SHOTS;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// The page's status line state, waited for (the app sets data-state).
async function waitForState(page, states, timeout) {
  await page.waitForFunction(
    (wanted) => wanted.includes(document.getElementById('status').dataset.state),
    states,
    { timeout },
  );
}

async function snapshot(page) {
  return page.evaluate(() => ({
    status: document.getElementById('status').dataset.state,
    statusText: document.getElementById('status').textContent,
    deprecation: document.getElementById('deprecation').hidden
      ? null
      : document.getElementById('deprecation').textContent,
    deprecationSource: document.getElementById('deprecation').dataset.source || null,
    locked: document.getElementById('locked').hidden
      ? null
      : document.getElementById('locked').textContent.replace(/\s+/g, ' ').trim(),
    addDisabled: document.getElementById('add').disabled,
    todos: Array.from(document.querySelectorAll('#todos li')).map((li) => ({
      id: li.dataset.id,
      title: li.querySelector('.title').textContent,
      done: li.querySelector('input[type=checkbox]').checked,
      important: li.classList.contains('important'),
    })),
  }));
}

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--headless=new'],
});
let exitCode = 0;
let page = null;
const consoleLines = [];
try {
  const context = await browser.newContext();
  page = await context.newPage();
  page.on('console', (m) => consoleLines.push(m.type() + ': ' + m.text()));
  page.on('pageerror', (e) => consoleLines.push('pageerror: ' + e.message));

  await page.goto(url);
  page.on('framenavigated', (f) => consoleLines.push('navigated: ' + f.url()));
  page.on('requestfailed', (r) => consoleLines.push('request failed: ' + r.url() + ' ' + (r.failure() && r.failure().errorText)));
  await page.waitForFunction(() => window.webTodo !== undefined);
  await page.evaluate(() => window.webTodo.ready);
  // The first sync (an empty database) settles.
  await waitForState(page, ['synced'], 30000);
  const start = await snapshot(page);

  if (process.env.WEB_TODO_MODE === 'cross') {
    // The page's origin is not the node's: every request is a CORS one.
    await page.fill('#new-title', 'across origins');
    await page.setChecked('#new-important', true);
    await page.click('#add');
    await waitForState(page, ['syncing'], 15000).catch(() => {});
    await waitForState(page, ['synced'], 30000);
    const added = await snapshot(page);
    await page.screenshot({ path: path.join(shots, 'web-todo-cross-origin.png'), fullPage: true });
    say({ phase: 'cross', start, added, console: consoleLines });
    await browser.close();
    process.exit(0);
  }

  // Offline: the todos go into IndexedDB only.
  await context.setOffline(true);
  await waitForState(page, ['offline'], 15000);
  const wanted = [
    { title: 'buy milk', important: false },
    { title: 'call the plumber', important: true },
    { title: 'water the plants', important: false },
  ];
  for (const t of wanted) {
    await page.fill('#new-title', t.title);
    await page.setChecked('#new-important', t.important);
    await page.click('#add');
    await page.waitForFunction(
      (title) =>
        Array.from(document.querySelectorAll('#todos .title')).some((e) => e.textContent === title),
      t.title,
      { timeout: 10000 },
    );
  }
  // An edit of one of them, offline too: a second revision to carry.
  await page.click('#todos li:nth-child(3) input[type=checkbox]');
  await page.waitForFunction(
    () => document.querySelector('#todos li:nth-child(3)').classList.contains('done'),
    null,
    { timeout: 10000 },
  );
  const offline = await snapshot(page);

  // Online again: the app restarts its sync and pushes.
  await context.setOffline(false);
  let synced = true;
  try {
    await waitForState(page, ['syncing'], 15000).catch(() => {});
    await waitForState(page, ['synced'], 30000);
  } catch (_) {
    synced = false;
  }
  const online = await snapshot(page);
  await page.screenshot({ path: path.join(shots, 'web-todo.png'), fullPage: true });
  say({ phase: 'synced', synced, start, offline, online, console: consoleLines });

  if ((await nextLine()).trim() === 'locked') {
    await page.reload();
    await page.waitForFunction(() => window.webTodo !== undefined);
    await page.evaluate(() => window.webTodo.ready);
    try {
      await page.waitForSelector('#locked', { state: 'visible', timeout: 30000 });
    } catch (e) {
      throw new Error(
        'the page did not lock: ' + JSON.stringify(await snapshot(page)) + ' console: ' +
          JSON.stringify(consoleLines.slice(-20)),
      );
    }
    const locked = await snapshot(page);
    await page.screenshot({ path: path.join(shots, 'web-todo-locked.png'), fullPage: true });
    say({ phase: 'locked', locked, console: consoleLines });
  }
} catch (e) {
  let where = null;
  try {
    where = page && { url: page.url(), body: (await page.content()).slice(0, 2000) };
  } catch (_) {
    // The page is gone: say what is known.
  }
  say({
    phase: 'error',
    message: String(e && e.stack ? e.stack : e),
    page: where,
    console: consoleLines.slice(-30),
  });
  exitCode = 1;
} finally {
  closeInput();
  await browser.close();
}
process.exit(exitCode);
