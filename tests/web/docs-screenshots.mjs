// Makes the README's pictures of the web page (docs/screenshots/panel.png and overview.png)
// from a real daemon and real guests: the web fixture, a few snapshots taken through the API,
// one more in progress while the picture is taken.
//
//   node tests/web/docs-screenshots.mjs build/web_fixture [out-dir]
//
// Not a test; run it by hand when the page's look changes.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixturePath = process.argv[2] || process.env.SNAPVIRT_WEB_FIXTURE;
const out = process.argv[3] || path.resolve(here, '../../docs/screenshots');
if (!fixturePath) throw new Error('usage: node docs-screenshots.mjs <web_fixture> [out-dir]');
mkdirSync(out, { recursive: true });

const fixture = spawn(fixturePath, [], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, SNAPVIRT_WEB_DELAYS: 'saving.after=20000' } });
const world = await new Promise((resolve) => createInterface({ input: fixture.stdout }).once('line', (l) => resolve(JSON.parse(l))));
const [vm] = world.instances;

async function call(method, p, body) {
  const r = await fetch(world.url + p, {
    method,
    headers: { Authorization: 'Bearer ' + world.token, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return r.json();
}
async function take(body) {
  const r = await call('POST', `/v1/instances/${vm}/snapshots`, body);
  if (!r.job) throw new Error(`taking ${body.display_name}: ${JSON.stringify(r)}`);
  for (;;) {
    const j = await call('GET', `/v1/jobs/${r.job.id}?wait=60`);
    if (['succeeded', 'failed', 'cancelled'].includes(j.state)) {
      if (j.state !== 'succeeded') throw new Error(`taking ${body.display_name}: ${j.state} ${JSON.stringify(j.error)}`);
      return { job: j, snapshot: r.snapshot };
    }
  }
}

let browser;
try {
  // The daemon pauses 20 s after saving RAM (SNAPVIRT_WEB_DELAYS): for the last snapshot, which
  // is to be seen in progress; the one before waits it out.
  const base = await take({ mode: 'stopped', display_name: 'Base install', description: 'Debian 12, before any change', force_stop: true, shutdown_timeout_s: 2 });
  await take({ mode: 'memory', display_name: 'Before the upgrade', description: 'Known-good state' });
  await call('POST', `/v1/snapshots/${base.snapshot.id}/revert`, { start: 'running' });
  await new Promise((r) => setTimeout(r, 8000));
  await take({ mode: 'stopped', display_name: 'Clean config test', force_stop: true, shutdown_timeout_s: 2 });
  // One in progress while the picture is taken.
  const pending = await call('POST', `/v1/instances/${vm}/snapshots`, { mode: 'memory', display_name: 'Nightly 2026-11-26' });
  if (!pending.job) throw new Error(JSON.stringify(pending));

  browser = await chromium.launch({
    executablePath: process.env.SNAPVIRT_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  await page.goto(`${world.url}/#token=${world.token}`);
  await page.getByRole('link', { name: vm, exact: true }).click();
  await page.locator('#snapshot-panel tr[data-snapshot-id]').nth(3).waitFor();
  await page.waitForTimeout(1500);
  await page.screenshot({ path: path.join(out, 'panel.png') });
  await page.getByRole('link', { name: 'VM snapshots', exact: true }).click();
  await page.getByRole('combobox', { name: 'Instance', exact: true }).selectOption(vm);
  await page.locator('tbody tr[data-snapshot-id]').nth(3).waitFor();
  await page.waitForTimeout(800);
  await page.screenshot({ path: path.join(out, 'overview.png') });
  console.log(`wrote ${out}/panel.png and overview.png`);
} finally {
  if (browser) await browser.close();
  fixture.stdin.end();
  await new Promise((r) => fixture.once('exit', r));
}
