// snapvirtd's web page in a real browser (Debian's chromium, headless, driven by playwright-core)
// against the real daemon and real QEMU guests, through the whole help page it mirrors: open an
// instance, take a snapshot with RAM and one with the instance stopped and see both appear live;
// in the overview pick one by display name, revert with Cancel (nothing happens) and with OK
// (checked through the API); edit a display name; delete with the trash can. Once in English,
// once in German; then the Schedules card (add, a refused cron at its field, edit, disable, live
// updates, delete after confirmation, a schedule's snapshots tagged). Screenshots of each step go to
// $SNAPVIRT_WEB_SCREENSHOTS.
//
//   SNAPVIRT_WEB_FIXTURE=build/tests/web/web_fixture node tests/web/panel.test.mjs
//
// The fixture program makes the guests and a daemon, prints {url, token, instances} and removes
// everything when its stdin closes, so nothing is left behind when this process fails or dies.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error('playwright-core is not installed in tests/web: run scripts/test (or npm ci in tests/web).');
  throw e;
}

const FIXTURE = process.env.SNAPVIRT_WEB_FIXTURE;
const SHOTS = process.env.SNAPVIRT_WEB_SCREENSHOTS || path.resolve('web-screenshots');
const CHROMIUM = process.env.SNAPVIRT_CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 180_000;

assert.ok(FIXTURE && existsSync(FIXTURE), 'SNAPVIRT_WEB_FIXTURE must name the built web_fixture');
assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium)`);
mkdirSync(SHOTS, { recursive: true });

// ---- the world: fixture, API, browser ----------------------------------------------------------

let fixture;
let world; // {url, token, instances: [running, off], uuids}
let browser;

function startFixture() {
  return new Promise((resolve, reject) => {
    fixture = spawn(FIXTURE, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    fixture.on('error', reject);
    fixture.on('exit', (code) => reject(new Error(`the fixture exited early (${code})`)));
    const lines = createInterface({ input: fixture.stdout });
    lines.once('line', (line) => resolve(JSON.parse(line)));
  });
}

async function stopFixture() {
  if (!fixture || fixture.exitCode !== null) return;
  const done = new Promise((resolve) => fixture.once('exit', resolve));
  fixture.stdin.end();
  const timer = setTimeout(() => fixture.kill('SIGTERM'), 60_000);
  await done;
  clearTimeout(timer);
}

async function apiCall(method, p, body) {
  const r = await fetch(world.url + p, {
    method,
    headers: { Authorization: 'Bearer ' + world.token, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text && r.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}
const apiGet = (p) => apiCall('GET', p);

async function eventually(fn, { timeout = 60_000, every = 200, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}` + (last instanceof Error ? `: ${last.message}` : ''));
    await new Promise((r) => setTimeout(r, every));
  }
}

async function snapshotByDisplayName(instance, displayName) {
  const r = await apiGet(`/v1/instances/${encodeURIComponent(instance)}/snapshots`);
  assert.equal(r.status, 200);
  return r.body.items.find((s) => s.display_name === displayName) || null;
}

async function jobsOf(instance, kind) {
  const r = await apiGet(`/v1/jobs?instance=${encodeURIComponent(instance)}&kind=${kind}`);
  assert.equal(r.status, 200);
  return r.body.items;
}

// ---- page helpers ------------------------------------------------------------------------------

const exact = (name) => ({ name, exact: true });

let lastPage = null;
async function newPage(locale) {
  const context = await browser.newContext({ locale, viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  lastPage = page;
  page.setDefaultTimeout(30_000);
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push('pageerror: ' + e.message));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // 401 (the sign-in step) and 409 (the busy step) are expected answers of the API.
    if (/Failed to load resource/.test(m.text())) return;
    page.problems.push('console: ' + m.text());
  });
  return page;
}

let shotNo = 0;
async function shot(page, name) {
  const file = path.join(SHOTS, `${String(++shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

async function text(locator) {
  return ((await locator.textContent()) || '').replace(/\s+/g, ' ').trim();
}

async function waitText(locator, re, timeout = 60_000) {
  return eventually(async () => re.test(await text(locator)), { timeout, every: 100, what: `text ${re} in ${locator}` });
}

function panel(page) {
  return page.locator('#snapshot-panel');
}

function panelRow(page, displayName) {
  return panel(page).locator('tr[data-snapshot-id]').filter({ has: page.getByRole('link', exact(displayName)) });
}

// Records every state the panel shows for each snapshot row (MutationObserver), so a state that
// lasts a moment is not missed between two polls.
async function recordPanelStates(page) {
  await page.evaluate(() => {
    window.__states = {};
    const take = () => {
      for (const row of document.querySelectorAll('#snapshot-panel tr[data-snapshot-id]')) {
        const name = row.querySelector('.strong-link')?.textContent || '';
        const badge = (row.querySelector('.state-wrap')?.textContent || '').replace(/\s+/g, ' ').trim();
        const list = (window.__states[name] ||= []);
        if (list[list.length - 1] !== badge) list.push(badge);
      }
    };
    new MutationObserver(take).observe(document.body, { subtree: true, childList: true, characterData: true });
    take();
  });
}

async function seenStates(page, name) {
  return page.evaluate((n) => (window.__states && window.__states[n]) || [], name);
}

async function openInstance(page, name) {
  await page.getByRole('link', exact(NAMES.instances)).click();
  await page.getByRole('link', exact(name)).click();
  await page.getByRole('heading', { level: 1 }).filter({ hasText: name }).waitFor();
  await panel(page).waitFor();
}

function dialog(page, name) {
  return page.getByRole('dialog', exact(name));
}

async function takeSnapshot(page, L, { name, description, mode, timeout, force, keep }) {
  await page.getByRole('button', exact(NAMES.take)).click();
  const dlg = dialog(page, NAMES.take);
  await dlg.waitFor();
  await waitText(dlg.getByRole('heading', { level: 2 }), new RegExp('^' + esc(L.take) + '$'));
  if (name) await dlg.getByRole('textbox', exact('Name')).fill(name);
  if (description) await dlg.getByRole('textbox', exact('Description')).fill(description);
  if (mode === 'memory') await dlg.getByRole('radio', exact('Include RAM')).check();
  else await dlg.getByRole('radio', exact('Stop instance')).check();
  if (timeout) await dlg.getByRole('spinbutton', exact('Shutdown timeout (seconds)')).fill(String(timeout));
  if (force) await dlg.getByRole('checkbox', exact('Force stop after timeout')).check();
  if (keep) await dlg.getByRole('checkbox', exact('Keep stopped afterwards')).check();
  return dlg;
}

function esc(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// The English accessible names the page promises in every language.
const NAMES = { instances: 'Instances', snapshots: 'VM snapshots', take: 'Take VM snapshot' };

// The visible labels of each language.
const LABELS = {
  en: {
    instances: 'Instances',
    snapshots: 'VM snapshots',
    panel: 'VM snapshots',
    take: 'Take VM snapshot',
    memory: 'Include RAM',
    stopped: 'Stop instance',
    create: 'Create',
    cancel: 'Cancel',
    revert: 'Revert to snapshot',
    lost: 'What will be lost',
    edit: 'Edit',
    save: 'Save',
    delete: 'Delete',
    withChildren: 'With children',
    creating: 'creating',
    ready: 'ready',
    withRam: 'with RAM',
    stoppedMode: 'stopped',
    running: 'running',
    shutoff: 'shut off',
    reverted: 'was reverted to',
    current: 'current',
    displayName: 'Display name',
    busy: 'is busy',
    advanced: 'Advanced',
  },
  de: {
    instances: 'Instanzen',
    snapshots: 'VM-Snapshots',
    panel: 'VM-Schnappschüsse',
    take: 'VM-Schnappschuss machen',
    memory: 'RAM einbeziehen',
    stopped: 'Instanz stoppen',
    create: 'Erstellen',
    cancel: 'Abbrechen',
    revert: 'Zum Snapshot zurückkehren',
    lost: 'Was verloren geht',
    edit: 'Bearbeiten',
    save: 'Speichern',
    delete: 'Löschen',
    withChildren: 'Mit untergeordneten Snapshots',
    creating: 'wird erstellt',
    ready: 'bereit',
    withRam: 'mit RAM',
    stoppedMode: 'gestoppt',
    running: 'läuft',
    shutoff: 'ausgeschaltet',
    reverted: 'wurde auf',
    current: 'aktuell',
    displayName: 'Anzeigename',
    busy: 'is busy',
    advanced: 'Erweitert',
  },
};

// Steps run in order; after a failed step the rest of its language is skipped.
function steps(title, fn) {
  describe(title, () => {
    let failed = false;
    const step = (name, body) =>
      it(name, { timeout: STEP_TIMEOUT }, async (t) => {
        if (failed) return t.skip('an earlier step failed');
        try {
          await body();
        } catch (e) {
          failed = true;
          if (lastPage && !lastPage.isClosed()) await shot(lastPage, 'FAILED').catch(() => {});
          throw e;
        }
      });
    fn(step);
  });
}

// ---- the test ----------------------------------------------------------------------------------

before(async () => {
  world = await startFixture();
  fixture.removeAllListeners('exit');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  await stopFixture();
});

describe('the page as served', () => {
  it('comes with a strict Content-Security-Policy and its files from the daemon', async () => {
    const r = await fetch(world.url + '/');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/html/);
    const csp = r.headers.get('content-security-policy');
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'/);
    const html = await r.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline scripts');
    assert.doesNotMatch(html, /\sstyle=/, 'no style attributes');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from elsewhere');
    for (const f of ['app.js', 'api.js', 'i18n.js', 'app.css', 'favicon.svg']) {
      const a = await fetch(world.url + '/ui/' + f);
      assert.equal(a.status, 200, f);
      const body = await a.text();
      assert.ok(body.length < 120_000, `${f} stays small`);
    }
  });
});

for (const lang of ['en', 'de']) {
  const L = LABELS[lang];
  const locale = lang === 'en' ? 'en-US' : 'de-DE';
  const N = lang === 'en'
    ? { memory: 'Before upgrade', memoryEdited: 'Before upgrade (verified)', stopped: 'cold-copy', search: 'Before', description: 'Known-good state before the upgrade' }
    : { memory: 'Vor dem Update', memoryEdited: 'Vor dem Update (geprüft)', stopped: 'Kalte Kopie', search: 'Vor dem', description: 'Funktionierender Stand vor dem Update' };

  steps(`the VM snapshots panel (${lang})`, (step) => {
    let page;
    let running;
    let off;
    let memorySnap;
    let stoppedSnap;

    step('takes the token from the URL fragment and lists the instances', async () => {
      [running, off] = world.instances;
      page = await newPage(locale);
      await page.goto(`${world.url}/#token=${encodeURIComponent(world.token)}`);
      await page.getByRole('link', exact(running)).waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('snapvirt.token')), world.token);
      assert.doesNotMatch(page.url(), /token=/, 'the token leaves the address bar');
      assert.equal(await page.evaluate(() => document.documentElement.lang), lang);
      // Navigation by its English accessible names, labelled in the page's language.
      assert.equal(await text(page.getByRole('link', exact(NAMES.instances))), L.instances);
      assert.equal(await text(page.getByRole('link', exact(NAMES.snapshots))), L.snapshots);
      assert.equal(await text(page.getByRole('heading', { level: 1 })), L.instances);
      const row = page.getByRole('row').filter({ has: page.getByRole('link', exact(running)) });
      await waitText(row, new RegExp(esc(L.running)));
      const offRow = page.getByRole('row').filter({ has: page.getByRole('link', exact(off)) });
      await waitText(offRow, new RegExp(esc(L.shutoff)));
      // The footer names the host as GET /v1/host does.
      const host = await apiGet('/v1/host');
      assert.equal(host.status, 200);
      assert.ok(host.body.libvirt_version && host.body.qemu_version, 'the daemon has reached libvirt');
      const footer = `${host.body.hostname} · libvirt ${host.body.libvirt_version} · QEMU ${host.body.qemu_version} · snapvirt ${host.body.snapvirt_version}`;
      await waitText(page.locator('.nav-foot'), new RegExp('^' + esc(footer) + '$'));
      await shot(page, `${lang}-instances`);
    });

    if (lang === 'en') {
      step('asks for a token when the API answers 401', async () => {
        const p2 = await newPage(locale);
        await p2.goto(`${world.url}/`);
        const dlg = dialog(p2, 'Sign in');
        await dlg.waitFor();
        await dlg.getByLabel('Access token').fill('not-the-token');
        await dlg.getByRole('button', exact('Sign in')).click();
        await waitText(dlg.getByRole('alert'), /not valid/);
        await shot(p2, `${lang}-sign-in`);
        await dlg.getByLabel('Access token').fill(world.token);
        await dlg.getByRole('button', exact('Sign in')).click();
        await p2.getByRole('link', exact(running)).waitFor();
        await dlg.waitFor({ state: 'detached' });
        assert.deepEqual(p2.problems, []);
        await p2.context().close();
      });
    }

    step('offers Include RAM only while the instance runs, and works with the keyboard', async () => {
      await openInstance(page, off);
      const take = page.getByRole('button', exact(NAMES.take));
      assert.equal(await text(take), L.take);
      await eventually(() => take.isEnabled(), { what: 'the button enabled once the instance is loaded', timeout: 30_000 });
      await take.focus();
      await page.keyboard.press('Enter');
      const dlg = dialog(page, NAMES.take);
      await dlg.waitFor();
      assert.ok(await dlg.getByRole('radio', exact('Include RAM')).isDisabled(), 'no RAM snapshot of a shut-off instance');
      assert.ok(await dlg.getByRole('radio', exact('Stop instance')).isChecked());
      // Focus starts in the dialog and stays there.
      assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Name');
      for (let i = 0; i < 8; i++) {
        await page.keyboard.press('Tab');
        assert.ok(await page.evaluate(() => !!document.activeElement?.closest('dialog')), 'focus stays in the dialog');
      }
      await page.keyboard.press('Escape');
      await dlg.waitFor({ state: 'detached' });
      assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), NAMES.take, 'focus returns to the button');
    });

    step('takes a snapshot with RAM: it appears at once as creating with its phase, then ready, live', async () => {
      await openInstance(page, running);
      assert.equal(await text(panel(page).getByRole('heading', { level: 2 })), L.panel);
      await page.evaluate(() => (window.__noReload = 1));
      await recordPanelStates(page);
      const dlg = await takeSnapshot(page, L, { name: N.memory, description: N.description, mode: 'memory' });
      assert.ok(await dlg.getByRole('radio', exact('Include RAM')).isChecked());
      assert.equal(await text(dlg.locator('label.choice').first().locator('.choice-title')), L.memory);
      assert.equal(await text(dlg.getByRole('button', exact('Create'))), L.create);
      await shot(page, `${lang}-take-with-ram`);
      await dlg.getByRole('button', exact('Create')).click();
      await dlg.waitFor({ state: 'detached' });
      const row = panelRow(page, N.memory);
      await row.waitFor({ timeout: 5000 });
      await waitText(row, new RegExp(esc(L.creating)), 5000);
      await shot(page, `${lang}-creating-with-ram`);
      await waitText(row, new RegExp(esc(L.ready)), 120_000);
      const states = await seenStates(page, N.memory);
      assert.ok(states.some((s) => s.startsWith(L.creating + ' · ')), `creating with a phase, saw ${JSON.stringify(states)}`);
      assert.equal(states[states.length - 1], L.ready);
      assert.match(await text(row), new RegExp(esc(L.withRam)));
      assert.equal(await page.evaluate(() => window.__noReload), 1, 'no reload');
      memorySnap = await snapshotByDisplayName(running, N.memory);
      assert.ok(memorySnap, 'the API has it');
      assert.equal(memorySnap.mode, 'memory');
      assert.equal(memorySnap.state, 'ready');
      assert.equal(memorySnap.description, N.description);
    });

    step('the snapshot method is an advanced option; a method that breaks the rules is refused in the dialog', async () => {
      assert.equal(memorySnap.method, 'internal', 'auto picked internal for a qcow2 BIOS guest');
      const dlg = await takeSnapshot(page, L, { mode: 'memory' });
      const method = dlg.getByRole('combobox', exact('Snapshot method'));
      assert.ok(!(await method.isVisible()), 'hidden until Advanced is opened');
      await dlg.locator('details.advanced > summary').click();
      assert.equal(await text(dlg.locator('details.advanced > summary')), L.advanced);
      assert.equal(await method.inputValue(), 'auto');
      await method.selectOption('external');
      await shot(page, `${lang}-take-method`);
      await dlg.getByRole('button', exact('Create')).click();
      // The instance's snapshots are internal: 409 method_conflict, its message at the dialog.
      await waitText(dlg.getByRole('alert'), /share one method/, 10_000);
      await dlg.getByRole('button', exact('Cancel')).click();
      await dlg.waitFor({ state: 'detached' });
      const mine = (await apiGet(`/v1/instances/${running}/snapshots`)).body.items;
      assert.equal(mine.length, 1, 'nothing was taken');
    });

    step('shows the contract error of a busy instance, and takes a snapshot with the instance stopped', async () => {
      const before = await snapshotByDisplayName(running, N.memory);
      const dlg = await takeSnapshot(page, L, { name: N.stopped, mode: 'stopped', timeout: 3, force: true });
      assert.equal(await text(dlg.locator('label.choice').nth(1).locator('.choice-title')), L.stopped);
      await shot(page, `${lang}-take-stopped`);
      await dlg.getByRole('button', exact('Create')).click();
      await dlg.waitFor({ state: 'detached' });
      const row = panelRow(page, N.stopped);
      await waitText(row, new RegExp(esc(L.creating)), 5000);

      // A second job on the same instance: 409 instance_busy, its message shown in the dialog.
      const again = await takeSnapshot(page, L, { mode: 'memory' });
      await again.getByRole('button', exact('Create')).click();
      await waitText(again.getByRole('alert'), new RegExp(esc(L.busy)), 10_000);
      await shot(page, `${lang}-busy`);
      await again.getByRole('button', exact('Cancel')).click();
      await again.waitFor({ state: 'detached' });

      await waitText(row, new RegExp(esc(L.ready)), 150_000);
      const states = await seenStates(page, N.stopped);
      assert.ok(states.some((s) => s.startsWith(L.creating + ' · ')), `creating with a phase, saw ${JSON.stringify(states)}`);
      assert.match(await text(row), new RegExp(esc(L.stoppedMode)));
      // A child of the snapshot before it: indented under it, and the current one. (The daemon
      // learns the parent from libvirt just after the job, in a second update.)
      const depth = async (r) => Number(((await r.getAttribute('class')) || '').match(/depth-(\d)/)?.[1] ?? -1);
      await eventually(async () => (await depth(row)) === (await depth(panelRow(page, N.memory))) + 1, { what: 'the child indented under its parent', timeout: 30_000 });
      await waitText(row, new RegExp(esc(L.current)));
      assert.equal(await page.evaluate(() => window.__noReload), 1, 'no reload');
      stoppedSnap = await eventually(async () => {
        const x = await snapshotByDisplayName(running, N.stopped);
        return x && x.parent_id === before.id && x.is_current ? x : null;
      }, { what: 'the API: the stopped snapshot current, a child of the one before' });
      assert.equal(stoppedSnap.mode, 'stopped');
      // The instance runs again afterwards (keep stopped was off).
      await eventually(async () => (await apiGet(`/v1/instances/${running}`)).body.state === 'running', { what: 'the instance running again' });
      await waitText(page.locator('.page-head'), new RegExp(esc(L.running)));
      await page.mouse.move(0, 0);
      await shot(page, `${lang}-panel`);
    });

    step('the overview filters by instance and finds a snapshot by its display name', async () => {
      await page.getByRole('link', exact(NAMES.snapshots)).click();
      await page.getByRole('heading', { level: 1, name: L.snapshots }).waitFor();
      const filter = page.getByRole('combobox', exact(lang === 'en' ? 'Instance' : 'Instanz'));
      await eventually(async () => (await filter.locator('option').allTextContents()).includes(running), { what: 'instance options' });
      await filter.selectOption(running);
      await page.getByRole('link', exact(N.stopped)).waitFor();
      await page.getByRole('link', exact(N.memory)).waitFor();
      const rows = page.locator('tbody tr[data-snapshot-id]');
      await eventually(
        async () => (await rows.evaluateAll((trs, vm) => trs.length > 0 && trs.every((tr) => tr.textContent.includes(vm)), running)),
        { what: 'only the chosen instance’s snapshots', timeout: 10_000 },
      );
      if (lang === 'en') {
        // Paging, one per page (the address may set the page size).
        await page.evaluate((vm) => (location.hash = `#/snapshots?instance=${encodeURIComponent(vm)}&limit=1`), running);
        await eventually(async () => (await rows.count()) === 1, { what: 'one row per page', timeout: 10_000 });
        const first = await text(rows.first().getByRole('link').first());
        await page.getByRole('button', exact('Next page')).click();
        await waitText(page.locator('.pager'), /Page 2/, 10_000);
        const second = await text(rows.first().getByRole('link').first());
        assert.notEqual(first, second);
        assert.deepEqual([first, second].sort(), [N.memory, N.stopped].sort());
        await page.getByRole('button', exact('Previous page')).click();
        await waitText(page.locator('.pager'), /Page 1/, 10_000);
        await waitText(rows.first().getByRole('link').first(), new RegExp('^' + esc(first) + '$'), 10_000);
      }
      await page.getByRole('searchbox').fill(N.search);
      await eventually(async () => (await rows.count()) === 1, { what: 'one row after the search', timeout: 10_000 });
      await shot(page, `${lang}-overview`);
      await page.getByRole('link', exact(N.memory)).click();
      await page.getByRole('heading', { level: 1 }).filter({ hasText: N.memory }).waitFor();
    });

    step('Revert to snapshot asks first: Cancel does nothing', async () => {
      const reverts = (await jobsOf(running, 'revert')).length;
      const btn = page.getByRole('button', exact('Revert to snapshot'));
      assert.equal(await text(btn), L.revert);
      await btn.click();
      const dlg = dialog(page, 'Revert to snapshot');
      await dlg.waitFor();
      await waitText(dlg, new RegExp(esc(L.lost)));
      assert.match(await text(dlg), new RegExp(esc(N.memory)));
      assert.match(await text(dlg), new RegExp(esc(running)));
      await shot(page, `${lang}-revert-confirm`);
      await dlg.getByRole('button', exact('Cancel')).click();
      await dlg.waitFor({ state: 'detached' });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await jobsOf(running, 'revert')).length, reverts, 'no revert without OK');
      assert.equal((await apiGet(`/v1/snapshots/${memorySnap.id}`)).body.is_current, false);
    });

    step('Revert to snapshot with OK reverts the instance, progress and outcome in the page', async () => {
      const reverts = (await jobsOf(running, 'revert')).length;
      await page.getByRole('button', exact('Revert to snapshot')).click();
      const dlg = dialog(page, 'Revert to snapshot');
      await dlg.getByRole('button', exact('OK')).click();
      await dlg.waitFor({ state: 'detached' });
      const status = page.locator('.job-status');
      await waitText(status, new RegExp(esc(L.reverted)), 120_000);
      assert.equal(await status.getAttribute('data-job-state'), 'succeeded');
      await shot(page, `${lang}-reverted`);
      const jobs = await jobsOf(running, 'revert');
      assert.equal(jobs.length, reverts + 1);
      assert.equal(jobs[0].state, 'succeeded');
      assert.equal(jobs[0].snapshot_id, memorySnap.id);
      await eventually(async () => (await apiGet(`/v1/snapshots/${memorySnap.id}`)).body.is_current === true, { what: 'the snapshot current' });
      await eventually(async () => {
        const inst = (await apiGet(`/v1/instances/${running}`)).body;
        // A snapshot with RAM comes back running.
        return inst.current_snapshot_id === memorySnap.id && inst.state === 'running';
      }, { what: 'the instance running, at the snapshot' });
      await waitText(page.locator('.page-head'), new RegExp(esc(L.current)));
    });

    step('Edit changes the display name', async () => {
      const btn = page.getByRole('button', exact('Edit'));
      assert.equal(await text(btn), L.edit);
      await btn.click();
      const dlg = dialog(page, 'Edit snapshot');
      const field = dlg.getByRole('textbox', exact('Display name'));
      assert.equal(await field.inputValue(), N.memory);
      assert.equal(await text(dlg.locator('label').first()), L.displayName);
      await field.fill(N.memoryEdited);
      await shot(page, `${lang}-edit`);
      assert.equal(await text(dlg.getByRole('button', exact('Save'))), L.save);
      await dlg.getByRole('button', exact('Save')).click();
      await dlg.waitFor({ state: 'detached' });
      await page.getByRole('heading', { level: 1 }).filter({ hasText: N.memoryEdited }).waitFor();
      assert.equal((await apiGet(`/v1/snapshots/${memorySnap.id}`)).body.display_name, N.memoryEdited);
    });

    if (lang === 'en') {
      step('Delete: checkboxes in the overview and the red trash can, several at once', async () => {
        await page.getByRole('link', exact(NAMES.snapshots)).click();
        await page.getByRole('combobox', exact('Instance')).selectOption(running);
        await page.getByRole('link', exact(N.stopped)).waitFor();
        const trash = page.getByRole('button', exact('Delete'));
        assert.ok(await trash.isDisabled(), 'nothing selected yet');
        await page.getByRole('checkbox', exact(`Select ${N.stopped}`)).check();
        await page.getByRole('checkbox', exact(`Select ${N.memoryEdited}`)).check();
        await waitText(page.locator('.sel-info'), /2 selected/);
        assert.equal(await text(trash), L.delete);
        assert.equal(await trash.evaluate((b) => getComputedStyle(b).backgroundColor), 'rgb(196, 40, 28)', 'the trash can is red');
        assert.equal(await trash.locator('svg').count(), 1, 'with its icon');
        await trash.click();
        const dlg = dialog(page, 'Delete snapshot');
        await dlg.waitFor();
        assert.match(await text(dlg.getByRole('heading', { level: 2 })), /Delete 2 snapshots/);
        // One of them has a child (the other one): the choice is offered, and left off.
        assert.equal(await dlg.getByRole('checkbox', exact('With children')).isChecked(), false);
        await shot(page, `${lang}-delete-confirm`);
        await dlg.getByRole('button', exact('OK')).click();
        await dlg.waitFor({ state: 'detached' });
        // One job per instance at a time: the page deletes them one after the other.
        await page.getByRole('link', exact(N.stopped)).waitFor({ state: 'detached', timeout: 120_000 });
        await page.getByRole('link', exact(N.memoryEdited)).waitFor({ state: 'detached', timeout: 120_000 });
        await eventually(async () => (await apiGet(`/v1/snapshots/${stoppedSnap.id}`)).status === 404, { what: 'the one snapshot gone' });
        await eventually(async () => (await apiGet(`/v1/snapshots/${memorySnap.id}`)).status === 404, { what: 'the other gone' });
        await eventually(async () => {
          const deletes = await jobsOf(running, 'delete');
          return deletes.length === 2 && deletes.every((j) => j.state === 'succeeded');
        }, { what: 'two delete jobs, both succeeded' });
        await shot(page, `${lang}-deleted`);
      });
    } else {
      step('Delete with children from the snapshot itself, and the language switch', async () => {
        const trash = page.getByRole('button', exact('Delete'));
        assert.equal(await text(trash), L.delete);
        await trash.click();
        const dlg = dialog(page, 'Delete snapshot');
        const withChildren = dlg.getByRole('checkbox', exact('With children'));
        await withChildren.waitFor();
        assert.match(await text(dlg.locator('label.check')), new RegExp(esc(L.withChildren)));
        await withChildren.check();
        await shot(page, `${lang}-delete-with-children`);
        await dlg.getByRole('button', exact('OK')).click();
        await dlg.waitFor({ state: 'detached' });
        await eventually(async () => (await apiGet(`/v1/snapshots/${memorySnap.id}`)).status === 404, { what: 'the snapshot gone', timeout: 120_000 });
        await eventually(async () => (await apiGet(`/v1/snapshots/${stoppedSnap.id}`)).status === 404, { what: 'its child gone' });
        await page.getByRole('heading', { level: 1, name: L.snapshots }).waitFor({ timeout: 30_000 });

        // The switch overrides the browser's language, and back.
        await page.getByRole('combobox', exact('Sprache')).selectOption('en');
        await waitText(page.getByRole('link', exact(NAMES.instances)), /^Instances$/);
        assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
        await page.getByRole('combobox', exact('Language')).selectOption('de');
        await waitText(page.getByRole('link', exact(NAMES.instances)), /^Instanzen$/);
      });
    }

    step('no script errors and no CSP violations', async () => {
      assert.deepEqual(page.problems, []);
      await page.context().close();
    });
  });
}

// ---- the Schedules card ------------------------------------------------------------------------

const SCHED = {
  en: { title: 'Schedules', add: 'Add schedule', edit: 'Edit schedule', del: 'Delete schedule', minute: 'minute', disabled: 'disabled', never: 'not run yet', keep: 'last 9', withSnapshots: 'Also delete its snapshots', create: 'Create', save: 'Save', skipped: 'skipped' },
  de: { title: 'Zeitpläne', add: 'Zeitplan hinzufügen', edit: 'Zeitplan bearbeiten', del: 'Zeitplan löschen', minute: 'Minute', disabled: 'deaktiviert', never: 'noch nicht gelaufen', keep: 'letzte 9', withSnapshots: 'Auch seine Snapshots löschen', create: 'Erstellen', save: 'Speichern', skipped: 'übersprungen' },
};

describe('the page’s two languages', () => {
  it('have every string of the other, the schedules’ ones included', async () => {
    const src = await (await fetch(world.url + '/ui/i18n.js')).text();
    const keys = (name) => {
      const body = src.slice(src.indexOf(`const ${name} = {`), src.indexOf('};', src.indexOf(`const ${name} = {`)));
      return new Set([...body.matchAll(/^ {2}'([^']+)':/gm)].map((m) => m[1]));
    };
    const en = keys('en');
    const de = keys('de');
    assert.ok([...en].filter((k) => k.startsWith('sched.')).length > 40, 'the schedules’ strings are there');
    assert.deepEqual([...en].filter((k) => !de.has(k)), [], 'every English string has a German one');
    assert.deepEqual([...de].filter((k) => !en.has(k)), [], 'every German string has an English one');
  });
});

function schedCard(page) {
  return page.locator('#schedule-card');
}

function schedRow(page, name) {
  return schedCard(page).locator('tr[data-schedule-id]').filter({ has: page.locator('td.sched-name strong', { hasText: new RegExp('^' + esc(name) + '$') }) });
}

const byLabel = (scope, label) => scope.locator(`[aria-label="${label}"]`);

async function schedulesOf(instance) {
  const r = await apiGet(`/v1/instances/${encodeURIComponent(instance)}/schedules`);
  assert.equal(r.status, 200);
  return r.body.items;
}

for (const lang of ['en', 'de']) {
  const L = LABELS[lang];
  const S = SCHED[lang];
  const locale = lang === 'en' ? 'en-US' : 'de-DE';
  const name = lang === 'en' ? 'nightly' : 'naechtlich';

  steps(`the Schedules card (${lang})`, (step) => {
    let page;
    let off;
    let id;

    step('adds a schedule: a bad cron is shown at its field, then it is listed with its next run', async () => {
      off = world.instances[1];
      page = await newPage(locale);
      await page.goto(`${world.url}/#token=${encodeURIComponent(world.token)}`);
      await page.getByRole('link', exact(off)).waitFor();
      await openInstance(page, off);
      await schedCard(page).waitFor();
      assert.equal(await text(schedCard(page).getByRole('heading', { level: 2 })), S.title);
      const add = page.getByRole('button', exact('Add schedule'));
      assert.equal(await text(add), S.add);
      await eventually(() => add.isEnabled(), { what: 'Add schedule enabled', timeout: 30_000 });
      await add.click();
      const dlg = dialog(page, 'Add schedule');
      await dlg.waitFor();
      await waitText(dlg.getByRole('heading', { level: 2 }), new RegExp('^' + esc(S.add) + '$'));
      await byLabel(dlg, 'Name').fill(name);
      await byLabel(dlg, 'Cron expression').fill('61 2 * * *');
      await dlg.getByRole('radio', exact('Include RAM')).check();
      await byLabel(dlg, 'Keep last').fill('7');
      assert.equal(await text(dlg.getByRole('button', exact('Create'))), S.create);
      await dlg.getByRole('button', exact('Create')).click();

      // 400 with details.field "cron", cron_field "minute": the message under the cron field.
      const cronField = dlg.locator('.field').filter({ has: page.locator('[aria-label="Cron expression"]') });
      const err = cronField.locator('.field-error');
      await err.waitFor({ state: 'visible', timeout: 10_000 });
      const refused = await apiCall('POST', `/v1/instances/${off}/schedules`, { name: 'x', cron: '61 2 * * *', mode: 'memory', keep_last: 7 });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error.details.field, 'cron');
      const shown = await text(err);
      assert.ok(shown.startsWith(refused.body.error.message), `the API's message at the field: ${shown}`);
      assert.match(shown, new RegExp(esc(S.minute)));
      assert.equal(await byLabel(dlg, 'Cron expression').getAttribute('aria-invalid'), 'true');
      assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Cron expression');
      await shot(page, `${lang}-schedule-bad-cron`);
      assert.equal((await schedulesOf(off)).length, 0, 'nothing made');

      // An example fills the field; then it is made.
      await dlg.locator('.cron-examples .chip').first().click();
      assert.equal(await byLabel(dlg, 'Cron expression').inputValue(), '0 2 * * *');
      await dlg.getByRole('button', exact('Create')).click();
      await dlg.waitFor({ state: 'detached' });
      const row = schedRow(page, name);
      await row.waitFor({ timeout: 10_000 });
      const made = (await schedulesOf(off)).find((x) => x.name === name);
      assert.ok(made, 'the API has it');
      id = made.id;
      assert.equal(made.cron, '0 2 * * *');
      assert.equal(made.mode, 'memory');
      assert.equal(made.keep_last, 7);
      assert.equal(made.enabled, true);
      assert.ok(made.next_run_at, 'it has a next run');
      assert.equal(await row.locator('.sched-next time').getAttribute('datetime'), made.next_run_at);
      assert.match(await text(row), /0 2 \* \* \*/);
      assert.match(await text(row), /UTC/);
      assert.match(await text(row.locator('.sched-last')), new RegExp(esc(S.never)));
      await shot(page, `${lang}-schedule-added`);
    });

    step('edits it: keep last and time zone', async () => {
      await page.getByRole('button', exact(`Edit schedule ${name}`)).click();
      const dlg = dialog(page, 'Edit schedule');
      await dlg.waitFor();
      await waitText(dlg.getByRole('heading', { level: 2 }), new RegExp('^' + esc(S.edit) + '$'));
      assert.equal(await byLabel(dlg, 'Cron expression').inputValue(), '0 2 * * *');
      await byLabel(dlg, 'Keep last').fill('9');
      await dlg.locator('details.advanced summary').click();
      await byLabel(dlg, 'Time zone').fill('Europe/Berlin');
      assert.equal(await text(dlg.getByRole('button', exact('Save'))), S.save);
      await shot(page, `${lang}-schedule-edit`);
      await dlg.getByRole('button', exact('Save')).click();
      await dlg.waitFor({ state: 'detached' });
      const row = schedRow(page, name);
      await waitText(row, /Europe\/Berlin/, 10_000);
      await waitText(row, new RegExp(esc(S.keep)), 10_000);
      const s = (await apiGet(`/v1/schedules/${id}`)).body;
      assert.equal(s.keep_last, 9);
      assert.equal(s.timezone, 'Europe/Berlin');
      assert.equal(s.cron, '0 2 * * *');
      assert.equal(await row.locator('.sched-next time').getAttribute('datetime'), s.next_run_at);
    });

    step('disables it with the switch, and follows a change made elsewhere live', async () => {
      const row = schedRow(page, name);
      const sw = page.getByRole('switch', exact(`Enable ${name}`));
      assert.equal(await sw.isChecked(), true);
      await sw.click();
      await eventually(async () => (await apiGet(`/v1/schedules/${id}`)).body.enabled === false, { what: 'disabled in the API' });
      await waitText(row.locator('.sched-next'), new RegExp(esc(S.disabled)), 10_000);
      assert.equal((await apiGet(`/v1/schedules/${id}`)).body.next_run_at, null);
      await shot(page, `${lang}-schedule-disabled`);
      // Enabled through the API: the page follows the schedule.updated event.
      await page.evaluate(() => (window.__noReload = 1));
      const r = await apiCall('PATCH', `/v1/schedules/${id}`, { enabled: true });
      assert.equal(r.status, 200);
      await eventually(() => sw.isChecked(), { what: 'the switch on again, live', timeout: 10_000 });
      await row.locator('.sched-next time').waitFor({ timeout: 10_000 });
      // One made through the API shows up, and one deleted through it goes.
      const other = await apiCall('POST', `/v1/instances/${off}/schedules`, { name: 'from-api', cron: '@weekly', mode: 'stopped', max_age: '4w' });
      assert.equal(other.status, 201);
      await schedRow(page, 'from-api').waitFor({ timeout: 10_000 });
      assert.equal((await apiCall('DELETE', `/v1/schedules/${other.body.id}`)).status, 204);
      await schedRow(page, 'from-api').waitFor({ state: 'detached', timeout: 10_000 });
      assert.equal(await page.evaluate(() => window.__noReload), 1, 'no reload');
    });

    step('deletes it after confirmation: Cancel keeps it, OK removes it', async () => {
      await page.getByRole('button', exact(`Delete schedule ${name}`)).click();
      let dlg = dialog(page, 'Delete schedule');
      await dlg.waitFor();
      await waitText(dlg.getByRole('heading', { level: 2 }), new RegExp('^' + esc(S.del) + '$'));
      assert.match(await text(dlg.locator('label.check')), new RegExp(esc(S.withSnapshots)));
      assert.equal(await dlg.getByRole('checkbox', exact('Also delete its snapshots')).isChecked(), false);
      await shot(page, `${lang}-schedule-delete`);
      await dlg.getByRole('button', exact('Cancel')).click();
      await dlg.waitFor({ state: 'detached' });
      assert.equal((await apiGet(`/v1/schedules/${id}`)).status, 200, 'Cancel deletes nothing');
      await page.getByRole('button', exact(`Delete schedule ${name}`)).click();
      dlg = dialog(page, 'Delete schedule');
      await dlg.getByRole('button', exact('OK')).click();
      await dlg.waitFor({ state: 'detached' });
      await schedRow(page, name).waitFor({ state: 'detached', timeout: 10_000 });
      assert.equal((await apiGet(`/v1/schedules/${id}`)).status, 404);
    });

    if (lang === 'en') {
      step('a schedule’s snapshots carry its name, and go with it when asked', async () => {
        // Every 5 seconds (six fields), the shut-off instance's disks: quick runs.
        const r = await apiCall('POST', `/v1/instances/${off}/schedules`, { name: 'often', cron: '*/5 * * * * *', mode: 'stopped', keep_last: 2 });
        assert.equal(r.status, 201);
        const often = r.body;
        await schedRow(page, 'often').waitFor({ timeout: 10_000 });
        const tag = panel(page).locator(`[data-schedule-tag="${often.id}"]`).first();
        await tag.waitFor({ timeout: 90_000 });
        const taken = (await apiGet(`/v1/instances/${off}/snapshots`)).body.items;
        assert.ok(taken.length > 0 && taken.every((s) => s.schedule_id === often.id), 'only the schedule’s snapshots on this instance');
        assert.equal(await text(tag), 'often');
        // Its last run shows with its outcome, live.
        await waitText(schedRow(page, 'often').locator('.sched-last'), /succeeded/, 60_000);
        await shot(page, `${lang}-schedule-snapshots`);
        // Stop it, let the instance come to rest, then delete it with its snapshots.
        assert.equal((await apiCall('PATCH', `/v1/schedules/${often.id}`, { enabled: false })).status, 200);
        await eventually(async () => (await apiGet(`/v1/instances/${off}`)).body.busy_job_id === null, { what: 'no job running' });
        await page.getByRole('button', exact('Delete schedule often')).click();
        const dlg = dialog(page, 'Delete schedule');
        await dlg.getByRole('checkbox', exact('Also delete its snapshots')).check();
        await dlg.getByRole('button', exact('OK')).click();
        await dlg.waitFor({ state: 'detached' });
        await schedRow(page, 'often').waitFor({ state: 'detached', timeout: 10_000 });
        // The instance had no other snapshots: every one it has now is the schedule's.
        await eventually(async () => (await apiGet(`/v1/instances/${off}/snapshots`)).body.items.length === 0, { what: 'its snapshots deleted', timeout: 120_000 });
        await panel(page).locator(`[data-schedule-tag="${often.id}"]`).first().waitFor({ state: 'detached', timeout: 30_000 });
      });
    }

    step('no script errors and no CSP violations (schedules)', async () => {
      assert.deepEqual(page.problems, []);
      await page.context().close();
    });
  });
}
