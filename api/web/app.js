// snapvirtd's web page: instances, their VM snapshots, the host's snapshot overview.
// Plain DOM, no framework; everything is served by the daemon itself (strict CSP: no inline
// scripts or style attributes, no eval). Live through /v1/events.

import { t, NAMES, LANGUAGES, initLanguage, setLanguage, language } from './i18n.js';
import { api, ApiError, EventStream, takeTokenFromUrl, getToken, setToken, onTokenNeeded, enc, query } from './api.js';

// ---- DOM helpers -------------------------------------------------------------------------------

const PROPS = new Set(['checked', 'disabled', 'value', 'selected', 'hidden', 'required', 'indeterminate', 'autofocus']);

function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

let uidCounter = 0;
const uid = (p = 'id') => `${p}-${++uidCounter}`;

// Replaces a region's content, keeping keyboard focus on the element with the same data-key.
function swap(container, ...nodes) {
  const active = document.activeElement;
  const key = active && container.contains(active) && active.dataset ? active.dataset.key : null;
  container.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

const SVG = 'http://www.w3.org/2000/svg';
const ICONS = {
  trash: ['M3 6h18', 'M19 6l-1 14a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2L5 6', 'M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2', 'M10 11v6', 'M14 11v6'],
  camera: ['M23 19a2 2 0 0 1-2 2H3a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h4l2-3h6l2 3h4a2 2 0 0 1 2 2z', 'M16 13a4 4 0 1 1-8 0a4 4 0 1 1 8 0z'],
  revert: ['M1 4v6h6', 'M3.51 15a9 9 0 1 0 2.13-9.36L1 10'],
  edit: ['M17 3a2.83 2.83 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5L17 3z'],
  server: ['M4 2h16a2 2 0 0 1 2 2v4a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2z', 'M4 14h16a2 2 0 0 1 2 2v4a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2v-4a2 2 0 0 1 2-2z', 'M6 6h.01', 'M6 18h.01'],
  layers: ['M12 2L2 7l10 5 10-5-10-5z', 'M2 17l10 5 10-5', 'M2 12l10 5 10-5'],
  x: ['M18 6L6 18', 'M6 6l12 12'],
  check: ['M20 6L9 17l-5-5'],
  alert: ['M10.29 3.86L1.82 18a2 2 0 0 0 1.71 3h16.94a2 2 0 0 0 1.71-3L13.71 3.86a2 2 0 0 0-3.42 0z', 'M12 9v4', 'M12 17h.01'],
  info: ['M22 12a10 10 0 1 1-20 0a10 10 0 1 1 20 0z', 'M12 16v-4', 'M12 8h.01'],
  logout: ['M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'M16 17l5-5-5-5', 'M21 12H9'],
  left: ['M15 18l-6-6 6-6'],
  right: ['M9 18l6-6-6-6'],
  search: ['M19 11a8 8 0 1 1-16 0a8 8 0 1 1 16 0z', 'M21 21l-4.35-4.35'],
  chip: ['M6 4h12a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z', 'M9 9h6v6H9z', 'M9 1v3', 'M15 1v3', 'M9 20v3', 'M15 20v3', 'M20 9h3', 'M20 14h3', 'M1 9h3', 'M1 14h3'],
  power: ['M18.36 6.64a9 9 0 1 1-12.73 0', 'M12 2v10'],
  star: ['M12 2l3.09 6.26L22 9.27l-5 4.87 1.18 6.88L12 17.77l-6.18 3.25L7 14.14 2 9.27l6.91-1.01L12 2z'],
  clock: ['M22 12a10 10 0 1 1-20 0a10 10 0 1 1 20 0z', 'M12 6v6l4 2'],
  plus: ['M12 5v14', 'M5 12h14'],
  globe: ['M22 12a10 10 0 1 1-20 0a10 10 0 1 1 20 0z', 'M2 12h20', 'M12 2a15.3 15.3 0 0 1 4 10 15.3 15.3 0 0 1-4 10 15.3 15.3 0 0 1-4-10 15.3 15.3 0 0 1 4-10z'],
};

function icon(name, cls = 'icon') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', cls);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of ICONS[name] || []) {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

const spinner = () => h('span', { class: 'spinner', 'aria-hidden': 'true' });

// ---- formatting --------------------------------------------------------------------------------

function fmtDate(iso, short) {
  if (!iso) return t('none');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(language(), { dateStyle: 'medium', timeStyle: short ? 'short' : 'medium' }).format(d);
}

// Compact, for tables: the time alone today, day and time this year, else the date.
function fmtCompact(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return fmtDate(iso);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return new Intl.DateTimeFormat(language(), { timeStyle: 'short' }).format(d);
  if (d.getFullYear() === now.getFullYear())
    return new Intl.DateTimeFormat(language(), { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' }).format(d);
  return new Intl.DateTimeFormat(language(), { dateStyle: 'medium' }).format(d);
}

// A time for tables with the full one as its tooltip.
function timeEl(iso, full) {
  return h('time', { datetime: iso || '', title: iso ? fmtDate(iso) : '' }, full ? fmtDate(iso) : fmtCompact(iso));
}

function fmtBytes(n) {
  if (n === null || n === undefined) return t('none');
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return new Intl.NumberFormat(language(), { maximumFractionDigits: i ? 1 : 0 }).format(v) + ' ' + units[i];
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined) return t('none');
  if (ms < 1000) return t('unit.ms', { n: Math.round(ms) });
  const s = ms / 1000;
  if (s < 60) return t('unit.s', { n: new Intl.NumberFormat(language(), { maximumFractionDigits: 1 }).format(s) });
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s % 60)} s`;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const BUSY_STATES = new Set(['creating', 'reverting', 'deleting']);

function phaseText(job) {
  if (!job || !job.progress) return '';
  const key = 'phase.' + job.progress.phase;
  let s = t(key) === key ? String(job.progress.phase || '').replace(/_/g, ' ') : t(key);
  if (job.progress.percent !== null && job.progress.percent !== undefined) s += ` ${Math.round(job.progress.percent)}%`;
  return s;
}

function instanceBadge(inst) {
  const state = inst.state || 'other';
  const key = 'istate.' + state;
  return h('span', { class: ['badge', 'istate-' + state] }, h('span', { class: 'dot', 'aria-hidden': 'true' }), t(key) === key ? state : t(key));
}

function instanceFlags(inst) {
  return [
    inst.stale ? h('span', { class: 'badge flag-stale', title: t('stale.title') }, icon('alert', 'icon icon-sm'), t('stale')) : null,
    inst.defined === false ? h('span', { class: 'badge flag-undefined', title: t('undefined.title') }, t('undefined')) : null,
  ];
}

function activeJobFor(snapshotId) {
  let best = null;
  for (const j of store.jobs.values()) {
    if (j.snapshot_id !== snapshotId || TERMINAL.has(j.state)) continue;
    if (!best || j.created_at > best.created_at) best = j;
  }
  return best;
}

// The state badge, with the running job's phase beside it (creating · saving RAM).
function snapshotStateBadge(s) {
  const state = s.state;
  const busy = BUSY_STATES.has(state);
  const job = busy ? activeJobFor(s.id) : null;
  const key = 'sstate.' + state;
  return h(
    'span',
    { class: 'state-wrap' },
    h(
      'span',
      { class: ['badge', 'sstate-' + state], title: s.error ? s.error.message : null },
      busy ? spinner() : h('span', { class: 'dot', 'aria-hidden': 'true' }),
      h('span', { class: 'state-text' }, t(key) === key ? state : t(key)),
    ),
    job ? h('span', { class: 'phase' }, h('span', { class: 'sr-only' }, ' · '), phaseText(job)) : null,
  );
}

function modeTag(mode) {
  const m = ['memory', 'stopped'].includes(mode) ? mode : 'other';
  return h('span', { class: ['mode', 'mode-' + m], title: t(`mode.${m}.title`) }, icon(m === 'memory' ? 'chip' : m === 'stopped' ? 'power' : 'info', 'icon icon-sm'), t('mode.' + m));
}

function currentPill() {
  return h('span', { class: 'pill-current', title: t('panel.current.title') }, icon('star', 'icon icon-xs'), t('panel.current'));
}

// ---- schedules: formatting --------------------------------------------------------------------

// "in 5 hours", "vor 3 Minuten": relative to now, in the page's language.
function fmtRelative(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  const secs = Math.round((d.getTime() - Date.now()) / 1000);
  const abs = Math.abs(secs);
  const rtf = new Intl.RelativeTimeFormat(language(), { numeric: 'auto' });
  if (abs < 60) return rtf.format(secs, 'second');
  if (abs < 3600) return rtf.format(Math.round(secs / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(secs / 3600), 'hour');
  return rtf.format(Math.round(secs / 86400), 'day');
}

const OUTCOME_CLASS = { succeeded: 'sstate-ready', failed: 'sstate-error', running: 'sstate-creating', missed: 'sstate-reverting', skipped: 'sstate-missing' };

function outcomeBadge(run) {
  const key = 'outcome.' + run.outcome;
  const running = run.outcome === 'running';
  return h('span', { class: ['badge', OUTCOME_CLASS[run.outcome] || 'sstate-missing'], title: run.error ? run.error.message : null }, running ? spinner() : h('span', { class: 'dot', 'aria-hidden': 'true' }), t(key) === key ? run.outcome : t(key));
}

// "last 7 · 7d": what a schedule keeps.
function retentionText(s) {
  const parts = [];
  if (s.keep_last !== null && s.keep_last !== undefined) parts.push(t('sched.keep', { n: s.keep_last }));
  if (s.max_age) parts.push(t('sched.maxage', { age: s.max_age }));
  return parts.length ? parts.join(' · ') : t('none');
}

// The small tag on a snapshot a schedule took: the schedule's name.
function scheduleTag(snap) {
  if (!snap.schedule_id) return null;
  const sched = store.schedules.get(snap.schedule_id);
  const name = sched ? sched.name : t('sched.tag.unknown');
  return h('span', { class: 'tag-schedule', title: t('sched.tag.title', { name }), 'data-schedule-tag': snap.schedule_id }, icon('clock', 'icon icon-xs'), name);
}

// Every schedule on the host (for the tags of snapshots outside an instance's view).
let schedulesLoading = null;
function loadAllSchedules() {
  if (!schedulesLoading)
    schedulesLoading = (async () => {
      let cursor = null;
      do {
        const r = await api.get('/v1/schedules' + query({ limit: 1000, cursor }));
        for (const x of r.items) store.schedules.set(x.id, x);
        cursor = r.next_cursor;
      } while (cursor);
      scheduleUpdate();
    })()
      .catch(() => {})
      .finally(() => {
        schedulesLoading = null;
      });
  return schedulesLoading;
}

function needScheduleNames(snaps) {
  if (snaps.some((x) => x.schedule_id && !store.schedules.has(x.schedule_id))) loadAllSchedules();
}

function errorBox(err, retry) {
  const msg = err instanceof ApiError && err.code === 'forbidden' ? t('error.forbidden') : err.message || String(err);
  return h(
    'div',
    { class: 'notice notice-error', role: 'alert' },
    icon('alert'),
    h('div', { class: 'notice-body' }, h('strong', {}, t('error.title')), h('p', {}, msg)),
    retry ? h('button', { type: 'button', class: 'btn', onclick: retry }, t('retry')) : null,
  );
}

function loadingRow(cols) {
  return h('tr', {}, h('td', { colspan: cols, class: 'loading' }, spinner(), ' ', t('loading')));
}

// ---- the store ---------------------------------------------------------------------------------

const store = {
  instances: new Map(), // uuid → Instance
  instancesLoaded: false,
  snapshots: new Map(), // id → Snapshot
  jobs: new Map(), // id → Job
  schedules: new Map(), // id → Schedule
  version: '', // snapvirtd's, from /healthz (no token needed)
  host: null, // GET /v1/host, once a token is known
};

// What an event told us last, per object: an answer to a request sent before that event is older
// than the event and must not overwrite it.
const touched = new Map(); // 's:<id>' | 'i:<uuid>' → performance.now()
const now = () => performance.now();
const fresh = (key, since) => !(touched.get(key) > since);

function putSnapshot(s, since) {
  if (fresh('s:' + s.id, since)) store.snapshots.set(s.id, s);
}

function putInstance(i, since) {
  if (fresh('i:' + i.uuid, since)) store.instances.set(i.uuid, i);
}

function setInstances(items, since) {
  const next = new Map();
  for (const i of items) next.set(i.uuid, fresh('i:' + i.uuid, since) ? i : store.instances.get(i.uuid) || i);
  store.instances = next;
  store.instancesLoaded = true;
}

function instanceByName(name) {
  for (const i of store.instances.values()) if (i.name === name || i.uuid === name) return i;
  return null;
}

function putJob(job) {
  const old = store.jobs.get(job.id);
  // Events may arrive out of order with a long-poll answer: keep a terminal state once seen.
  if (old && TERMINAL.has(old.state) && !TERMINAL.has(job.state)) return;
  store.jobs.set(job.id, job);
}

function loadInstances() {
  const since = now();
  return api.get('/v1/instances').then((r) => {
    setInstances(r.items, since);
    return r.items;
  });
}

function snapshotsOf(uuid) {
  const list = [];
  for (const s of store.snapshots.values()) if (s.instance.uuid === uuid) list.push(s);
  return list;
}

// Parents before children, siblings by creation time; each with its depth in the tree.
function treeOrder(list) {
  const byId = new Map(list.map((s) => [s.id, s]));
  const children = new Map();
  const roots = [];
  for (const s of list) {
    if (s.parent_id && byId.has(s.parent_id)) {
      if (!children.has(s.parent_id)) children.set(s.parent_id, []);
      children.get(s.parent_id).push(s);
    } else roots.push(s);
  }
  const byTime = (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0);
  const out = [];
  const walk = (s, depth) => {
    out.push({ s, depth });
    for (const c of (children.get(s.id) || []).sort(byTime)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byTime)) walk(r, 0);
  return out;
}

function descendantCount(id, list) {
  let n = 0;
  const stack = [id];
  while (stack.length) {
    const cur = stack.pop();
    for (const s of list)
      if (s.parent_id === cur) {
        n++;
        stack.push(s.id);
      }
  }
  return n;
}

// ---- toasts and job tracking -------------------------------------------------------------------

function toast({ kind = 'info', text, detail }) {
  const region = document.getElementById('toasts');
  const textEl = h('p', { class: 'toast-text' }, text);
  const detailEl = h('p', { class: 'toast-detail' }, detail || '');
  const bar = h('div', { class: 'progress indeterminate', 'aria-hidden': 'true' }, h('span'));
  const close = h('button', { type: 'button', class: 'btn-icon toast-close', 'aria-label': t('dismiss'), title: t('dismiss') }, icon('x'));
  const iconSlot = h('span', { class: 'toast-icon' });
  const el = h('div', { class: ['toast', 'toast-' + kind], role: kind === 'error' ? 'alert' : 'status' }, iconSlot, h('div', { class: 'toast-body' }, textEl, detailEl, bar), close);
  let timer = null;
  const self = {
    el,
    set(k, txt, det) {
      kind = k;
      el.className = 'toast toast-' + k;
      el.setAttribute('role', k === 'error' ? 'alert' : 'status');
      if (txt !== undefined) textEl.textContent = txt;
      if (det !== undefined) detailEl.textContent = det;
      iconSlot.replaceChildren(k === 'progress' ? spinner() : icon(k === 'error' ? 'alert' : k === 'success' ? 'check' : 'info'));
      bar.hidden = k !== 'progress';
      clearTimeout(timer);
      if (k === 'success' || k === 'info') timer = setTimeout(self.remove, 8000);
    },
    remove() {
      clearTimeout(timer);
      el.remove();
    },
  };
  close.addEventListener('click', self.remove);
  self.set(kind, text, detail);
  region.append(el);
  // Five at most: the oldest finished ones go first.
  const all = [...region.children];
  for (const old of all.filter((t) => !t.classList.contains('toast-progress')).slice(0, Math.max(0, all.length - 5))) old.remove();
  return self;
}

const trackers = new Map(); // job id → {toast, key, params, resolve}

function trackJob(job, key, params) {
  putJob(job);
  return new Promise((resolve) => {
    const tr = { toast: toast({ kind: 'progress', text: t(key + '.started', params), detail: phaseText(job) }), key, params, resolve };
    trackers.set(job.id, tr);
    onJob(job);
    pollJob(job.id);
  });
}

// The event stream brings a job's updates. Without it (reconnecting), or should an event have
// been missed, a plain GET now and then still finds the end. (No long poll: browsers allow a
// few connections per host, and the event stream holds one already.)
async function pollJob(id) {
  let waited = 0;
  while (trackers.has(id)) {
    await new Promise((r) => setTimeout(r, 1000));
    waited += 1000;
    if (connection === 'live' && waited < 20000) continue;
    waited = 0;
    try {
      onJob(await api.get(`/v1/jobs/${enc(id)}`));
    } catch {
      // try again later
    }
  }
}

function onJob(job) {
  putJob(job);
  const tr = trackers.get(job.id);
  if (!tr) return;
  if (!TERMINAL.has(job.state)) {
    tr.toast.set('progress', undefined, phaseText(job));
    return;
  }
  trackers.delete(job.id);
  if (job.state === 'succeeded') tr.toast.set('success', t(tr.key + '.done', tr.params), '');
  else tr.toast.set('error', t(tr.key + '.failed', { ...tr.params, message: job.error ? job.error.message : t('jstate.' + job.state) }), '');
  tr.resolve(job);
  scheduleUpdate();
}

// ---- dialogs -----------------------------------------------------------------------------------

// A modal <dialog> (focus stays inside, Escape closes) with an English accessible name and a
// localized visible title. submit(ctx) runs on the primary button or Enter; it returns true to close.
function openDialog({ name, title, body, primary, primaryClass = 'btn-primary', primaryName, cancelName = NAMES.cancel, submit, wide, onClose }) {
  const titleId = uid('dlg-title');
  const errorEl = h('div', { class: 'dialog-error', role: 'alert' });
  const primaryBtn = h('button', { type: 'submit', class: ['btn', primaryClass], 'aria-label': primaryName }, primary);
  const cancelBtn = h('button', { type: 'button', class: 'btn', 'aria-label': cancelName, 'data-cancel': '' }, t('cancel'));
  const form = h(
    'form',
    { class: 'dialog-form', novalidate: true },
    h('header', { class: 'dialog-head' }, h('h2', { id: titleId }, title), h('button', { type: 'button', class: 'btn-icon dialog-x', 'aria-label': t('dismiss'), title: t('dismiss'), tabindex: '-1' }, icon('x'))),
    h('div', { class: 'dialog-body' }, body),
    errorEl,
    h('footer', { class: 'dialog-foot' }, cancelBtn, primaryBtn),
  );
  const dlg = h('dialog', { class: ['dialog', wide ? 'dialog-wide' : null], 'aria-label': name, 'data-title-id': titleId }, form);
  const ctx = {
    dialog: dlg,
    error(msg) {
      errorEl.replaceChildren(msg ? h('div', { class: 'notice notice-error' }, icon('alert'), h('p', {}, msg)) : '');
      if (msg) errorEl.scrollIntoView({ block: 'nearest' });
    },
    busy(on) {
      primaryBtn.disabled = on;
      primaryBtn.classList.toggle('is-busy', on);
      form.setAttribute('aria-busy', on ? 'true' : 'false');
    },
    close() {
      if (dlg.open) dlg.close();
    },
  };
  cancelBtn.addEventListener('click', () => ctx.close());
  form.querySelector('.dialog-x').addEventListener('click', () => ctx.close());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (primaryBtn.disabled) return;
    ctx.error('');
    ctx.busy(true);
    let close = false;
    try {
      close = await submit(ctx);
    } catch (e) {
      ctx.error(e && e.message ? e.message : String(e));
    } finally {
      ctx.busy(false);
    }
    if (close) ctx.close();
  });
  // Tab and Shift+Tab go round inside the dialog.
  dlg.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Tab') return;
    const items = [...dlg.querySelectorAll('button, input, select, textarea, a[href], [tabindex]')].filter(
      (el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0 && !(el.type === 'radio' && !el.checked && dlg.querySelector(`input[type=radio][name="${el.name}"]:checked`)),
    );
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (ev.shiftKey && (document.activeElement === first || !dlg.contains(document.activeElement))) {
      ev.preventDefault();
      last.focus();
    } else if (!ev.shiftKey && (document.activeElement === last || !dlg.contains(document.activeElement))) {
      ev.preventDefault();
      first.focus();
    }
  });
  dlg.addEventListener('close', () => {
    dlg.remove();
    if (onClose) onClose();
  });
  document.body.append(dlg);
  dlg.showModal();
  const auto = dlg.querySelector('[data-autofocus]');
  if (auto) {
    auto.focus();
    if (auto.select && auto.value) auto.select();
  }
  return ctx;
}

function field({ label, control, hint }) {
  const id = control.id || (control.id = uid('f'));
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: id + '-hint' }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function openCreateDialog(inst) {
  const running = inst.state === 'running' || inst.state === 'paused';
  const nameInput = h('input', { type: 'text', 'aria-label': NAMES.name, maxlength: '255', autocomplete: 'off', spellcheck: 'false', 'data-autofocus': '' });
  const descInput = h('textarea', { 'aria-label': NAMES.description, maxlength: '4096', rows: '3' });

  const mkChoice = (value, label, aname, hint, disabled, checked) => {
    const hintId = uid('hint');
    const radio = h('input', { type: 'radio', name: 'mode', value, 'aria-label': aname, 'aria-describedby': hintId, disabled, checked });
    return {
      radio,
      el: h('label', { class: ['choice', disabled ? 'is-disabled' : null] }, radio, h('span', { class: 'choice-text' }, h('span', { class: 'choice-title' }, icon(value === 'memory' ? 'chip' : 'power', 'icon icon-sm'), label), h('span', { class: 'choice-hint', id: hintId }, hint))),
    };
  };
  const memory = mkChoice('memory', t('create.memory'), NAMES.memory, running ? t('create.memory.hint') : t('create.memory.off'), !running, running);
  const stopped = mkChoice('stopped', t('create.stopped'), NAMES.stopped, running ? t('create.stopped.hint') : t('create.stopped.off'), false, !running);

  const timeout = h('input', { type: 'number', min: '1', max: '86400', step: '1', inputmode: 'numeric', 'aria-label': NAMES.timeout, class: 'input-narrow', placeholder: '120' });
  const force = h('input', { type: 'checkbox', 'aria-label': NAMES.force });
  const keep = h('input', { type: 'checkbox', 'aria-label': NAMES.keep });
  const check = (box, label, hint) => {
    const hintId = uid('hint');
    box.setAttribute('aria-describedby', hintId);
    return h('label', { class: 'check' }, box, h('span', {}, h('span', { class: 'check-title' }, label), h('span', { class: 'choice-hint', id: hintId }, hint)));
  };
  const stopOptions = h(
    'div',
    { class: 'suboptions' },
    field({ label: t('create.timeout'), control: timeout, hint: t('create.timeout.hint') }),
    check(force, t('create.force'), t('create.force.hint')),
    check(keep, t('create.keep'), t('create.keep.hint')),
  );
  const syncStop = () => {
    const on = stopped.radio.checked && running;
    stopOptions.hidden = !running;
    for (const c of [timeout, force, keep]) c.disabled = !on;
    stopOptions.classList.toggle('is-disabled', !on);
  };
  memory.radio.addEventListener('change', syncStop);
  stopped.radio.addEventListener('change', syncStop);
  syncStop();

  const method = h(
    'select',
    { 'aria-label': NAMES.method, 'data-key': 'create-method' },
    ['auto', 'internal', 'external'].map((v) => h('option', { value: v }, t('method.' + v))),
  );
  const advanced = h('details', { class: 'advanced' }, h('summary', {}, t('create.advanced')), h('div', { class: 'advanced-body' }, field({ label: t('create.method'), control: method, hint: t('create.method.hint') })));

  const body = [
    h('p', { class: 'dialog-lead dialog-instance' }, icon('server', 'icon icon-sm'), h('strong', {}, inst.name), instanceBadge(inst)),
    field({ label: t('create.name'), control: nameInput, hint: t('create.name.hint') }),
    field({ label: t('create.description'), control: descInput }),
    h('fieldset', { class: 'choices' }, h('legend', {}, t('create.kind')), memory.el, stopped.el, stopOptions),
    advanced,
  ];

  openDialog({
    name: NAMES.dialogCreate,
    title: t('create.title'),
    body,
    primary: [icon('camera', 'icon icon-sm'), t('create.submit')],
    primaryName: NAMES.create,
    wide: true,
    async submit(ctx) {
      const mode = memory.radio.checked ? 'memory' : 'stopped';
      const req = { mode };
      if (method.value !== 'auto') req.method = method.value;
      const typed = nameInput.value.trim();
      if (typed) {
        if (NAME_RE.test(typed)) req.name = typed;
        else req.display_name = typed;
      }
      if (descInput.value.trim()) req.description = descInput.value;
      if (mode === 'stopped' && running) {
        if (timeout.value !== '') {
          const n = Number(timeout.value);
          if (!Number.isInteger(n) || n < 1 || n > 86400) {
            ctx.error(t('create.timeout') + ': 1–86400');
            timeout.focus();
            return false;
          }
          req.shutdown_timeout_s = n;
        }
        req.force_stop = force.checked;
        req.keep_stopped = keep.checked;
      }
      const r = await api.post(`/v1/instances/${enc(inst.uuid)}/snapshots`, req);
      store.snapshots.set(r.snapshot.id, r.snapshot);
      putJob(r.job);
      scheduleUpdate();
      trackJob(r.job, 'create', { name: r.snapshot.display_name, instance: inst.name });
      return true;
    },
  });
}

function openRevertDialog(snap) {
  const inst = store.instances.get(snap.instance.uuid) || { name: snap.instance.name, state: 'other' };
  const running = inst.state === 'running' || inst.state === 'paused';
  const start = h(
    'select',
    { 'data-key': 'revert-start' },
    ['auto', 'running', 'paused', 'stopped'].map((v) => h('option', { value: v }, t('revert.start.' + v))),
  );
  const strong = (s) => h('strong', {}, s);
  const question = t('revert.question', { instance: '\u0001', name: '\u0002', created: fmtDate(snap.created_at) })
    .split(/(\u0001|\u0002)/)
    .map((part) => (part === '\u0001' ? strong(inst.name) : part === '\u0002' ? strong(snap.display_name) : part));
  const body = [
    h('p', { class: 'dialog-lead' }, question),
    h(
      'div',
      { class: 'notice notice-warn' },
      icon('alert'),
      h('div', { class: 'notice-body' }, h('strong', {}, t('revert.lost.title')), h('p', {}, t(running ? 'revert.lost.running' : 'revert.lost.off', { instance: inst.name })), h('p', {}, t(snap.mode === 'stopped' ? 'revert.after.stopped' : 'revert.after.memory'))),
    ),
    field({ label: t('revert.start'), control: start }),
  ];
  const ctx = openDialog({
    name: NAMES.dialogRevert,
    title: t('revert.title'),
    body,
    primary: t('ok'),
    primaryName: NAMES.ok,
    async submit() {
      const r = await api.post(`/v1/snapshots/${enc(snap.id)}/revert`, { start: start.value });
      putJob(r.job);
      scheduleUpdate();
      trackJob(r.job, 'revert', { name: snap.display_name, instance: inst.name });
      return true;
    },
  });
  // Nothing happens without OK: Cancel has the focus.
  ctx.dialog.querySelector('[data-cancel]').focus();
}

function openEditDialog(snap) {
  const nameInput = h('input', { type: 'text', 'aria-label': NAMES.displayName, maxlength: '255', value: snap.display_name, autocomplete: 'off', required: true, 'data-autofocus': '' });
  const descInput = h('textarea', { 'aria-label': NAMES.description, maxlength: '4096', rows: '4' });
  descInput.value = snap.description || '';
  openDialog({
    name: NAMES.dialogEdit,
    title: t('edit.title'),
    body: [field({ label: t('edit.display_name'), control: nameInput }), field({ label: t('edit.description'), control: descInput })],
    primary: t('edit.save'),
    primaryName: NAMES.save,
    async submit() {
      const req = {};
      if (nameInput.value !== snap.display_name) req.display_name = nameInput.value;
      if (descInput.value !== (snap.description || '')) req.description = descInput.value;
      if (!Object.keys(req).length) return true;
      const updated = await api.patch(`/v1/snapshots/${enc(snap.id)}`, req);
      store.snapshots.set(updated.id, updated);
      scheduleUpdate();
      toast({ kind: 'success', text: t('edit.saved', { name: updated.display_name }) });
      return true;
    },
  });
}

// Deletes the given snapshots one after another (one job per instance at a time).
async function openDeleteDialog(snaps, { afterDelete } = {}) {
  // Children come from each instance's full list, not only from what the page shows.
  const byInstance = new Map();
  for (const s of snaps) {
    if (!byInstance.has(s.instance.uuid)) {
      try {
        const since = now();
        const r = await api.get(`/v1/instances/${enc(s.instance.uuid)}/snapshots`);
        for (const x of r.items) putSnapshot(x, since);
        byInstance.set(s.instance.uuid, r.items);
      } catch {
        byInstance.set(s.instance.uuid, snapshotsOf(s.instance.uuid));
      }
    }
  }
  const kids = new Map(snaps.map((s) => [s.id, descendantCount(s.id, byInstance.get(s.instance.uuid) || [])]));
  const anyKids = [...kids.values()].some((n) => n > 0);
  const one = snaps.length === 1;
  const withChildren = h('input', { type: 'checkbox', 'aria-label': NAMES.withChildren });
  const hintId = uid('hint');
  withChildren.setAttribute('aria-describedby', hintId);
  const strong = (s) => h('strong', {}, s);
  const question = one
    ? t('delete.question.one', { name: '\u0001', instance: '\u0002' })
        .split(/(\u0001|\u0002)/)
        .map((p) => (p === '\u0001' ? strong(snaps[0].display_name) : p === '\u0002' ? strong(snaps[0].instance.name) : p))
    : t('delete.question.many', { n: snaps.length });
  const body = [
    h('p', { class: 'dialog-lead' }, question),
    one ? null : h('ul', { class: 'delete-list' }, snaps.map((s) => h('li', {}, h('strong', {}, s.display_name), ' · ', s.instance.name, kids.get(s.id) ? h('span', { class: 'muted' }, ` (+${kids.get(s.id)})`) : null))),
    h('div', { class: 'notice notice-danger' }, icon('trash'), h('div', { class: 'notice-body' }, h('p', {}, t('delete.warning')))),
    anyKids
      ? h('label', { class: 'check' }, withChildren, h('span', {}, h('span', { class: 'check-title' }, t('delete.children')), h('span', { class: 'choice-hint', id: hintId }, one ? (kids.get(snaps[0].id) === 1 ? t('delete.children.hint.single') : t('delete.children.hint.one', { n: kids.get(snaps[0].id) })) : t('delete.children.hint.many'))))
      : null,
  ];
  const queue = [...snaps];
  const ctx = openDialog({
    name: NAMES.dialogDelete,
    title: one ? t('delete.title.one') : t('delete.title.many', { n: snaps.length }),
    body,
    primary: [icon('trash', 'icon icon-sm'), t('ok')],
    primaryClass: 'btn-danger',
    primaryName: NAMES.ok,
    async submit() {
      // The first request answers in the dialog (e.g. a busy instance); the rest run after it.
      const first = queue[0];
      const job = await deleteOne(first, withChildren.checked && kids.get(first.id) > 0);
      queue.shift();
      (async () => {
        let last = job ? await job : null;
        for (const s of queue) {
          if (!store.snapshots.has(s.id)) continue; // gone with a parent's subtree
          try {
            const next = await deleteOne(s, withChildren.checked && kids.get(s.id) > 0);
            if (next) last = await next;
          } catch (e) {
            if (!(e instanceof ApiError && e.status === 404)) toast({ kind: 'error', text: t('delete.failed', { name: s.display_name, message: e.message }) });
          }
        }
        if (afterDelete) afterDelete(last);
      })();
      return true;
    },
  });
  ctx.dialog.querySelector('[data-cancel]').focus();
}

// Sends one DELETE; returns a promise of the finished job (or null when it was gone already).
async function deleteOne(s, children) {
  let r;
  try {
    r = await api.del(`/v1/snapshots/${enc(s.id)}${children ? '?children=true' : ''}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      store.snapshots.delete(s.id);
      scheduleUpdate();
      return null;
    }
    throw e;
  }
  putJob(r.job);
  scheduleUpdate();
  return trackJob(r.job, 'delete', { name: s.display_name });
}

function openSigninDialog(message) {
  return new Promise((resolve, reject) => {
    const input = h('input', { type: 'password', 'aria-label': NAMES.tokenField, autocomplete: 'off', spellcheck: 'false', 'data-autofocus': '' });
    let given = null;
    const ctx = openDialog({
      name: NAMES.dialogSignin,
      title: t('signin.title'),
      body: [h('p', { class: 'dialog-lead' }, t('signin.text')), field({ label: t('signin.token'), control: input })],
      primary: t('signin.submit'),
      primaryName: NAMES.signin,
      async submit(c) {
        const token = input.value.trim();
        if (!token) {
          input.focus();
          return false;
        }
        given = token;
        return true;
      },
      onClose() {
        if (given) {
          setToken(given);
          renderHeader();
          resolve(given);
        } else reject(new ApiError(401, 'unauthenticated', t('signin.needed')));
      },
    });
    // A token that was refused: say why.
    if (message && getToken()) ctx.error(message);
  });
}

// ---- the shell ---------------------------------------------------------------------------------

let connection = 'connecting';

function renderHeader() {
  const header = document.getElementById('topbar');
  const langSelect = h(
    'select',
    { class: 'lang-select', 'aria-label': t('lang.label'), title: t('lang.label'), 'data-key': 'lang' },
    LANGUAGES.map((l) => h('option', { value: l.code, selected: l.code === language(), lang: l.code }, l.label)),
  );
  langSelect.addEventListener('change', () => {
    setLanguage(langSelect.value);
    renderShell();
    mountRoute(false);
    document.querySelector('.lang-select').focus();
  });
  const conn = h('span', { class: 'conn', id: 'conn' });
  swap(
    header,
    h('a', { class: 'brand', href: '#/instances', 'aria-label': 'snapvirt' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, icon('layers')), h('span', { class: 'brand-text' }, h('span', { class: 'brand-name' }, 'snapvirt'), h('span', { class: 'brand-sub' }, t('app.subtitle')))),
    h('div', { class: 'topbar-spacer' }),
    conn,
    h('label', { class: 'lang' }, icon('globe', 'icon icon-sm'), langSelect),
    getToken()
      ? h(
          'button',
          {
            type: 'button',
            class: 'btn btn-topbar',
            'data-key': 'signout',
            onclick: () => {
              setToken('');
              location.reload();
            },
          },
          icon('logout', 'icon icon-sm'),
          t('signout'),
        )
      : null,
  );
  renderConnection();
}

// The live connection's state in the header, changed in place (not to disturb the controls beside it).
function renderConnection() {
  const el = document.getElementById('conn');
  if (!el) return;
  el.className = 'conn conn-' + connection;
  el.title = t(connection === 'live' ? 'conn.title.live' : 'conn.title.down');
  el.replaceChildren(h('span', { class: 'dot', 'aria-hidden': 'true' }), t('conn.' + connection));
}

// "hv1 · libvirt 9.0.0 · QEMU 7.2.0 · snapvirt 0.1.0"; the versions libvirt has not told yet are left out.
function footerText() {
  const host = store.host;
  if (!host) return store.version ? t('footer', { version: store.version }) : '';
  const parts = [host.hostname];
  if (host.libvirt_version) parts.push(t('footer.libvirt', { version: host.libvirt_version }));
  if (host.qemu_version) parts.push(t('footer.qemu', { version: host.qemu_version }));
  parts.push(t('footer.snapvirt', { version: host.snapvirt_version }));
  if (host.stale) parts.push(t('footer.stale'));
  return parts.join(' · ');
}

function loadHost() {
  api
    .get('/v1/host', { noPrompt: true })
    .then((host) => {
      store.host = host;
      renderNav();
    })
    .catch(() => {});
}

function renderNav() {
  const route = parseRoute();
  const section = route.name === 'overview' || route.name === 'snapshot' ? 'snapshots' : 'instances';
  const link = (key, href, ic, name) =>
    h('a', { href, class: ['nav-link', section === key ? 'is-active' : null], 'aria-label': name, 'aria-current': section === key ? 'page' : null }, icon(ic), h('span', {}, t('nav.' + key)));
  swap(
    document.getElementById('sidebar'),
    h('p', { class: 'nav-group' }, t('nav.compute')),
    link('instances', '#/instances', 'server', NAMES.instances),
    link('snapshots', '#/snapshots', 'layers', NAMES.snapshots),
    h('p', { class: 'nav-foot' }, footerText()),
  );
  document.getElementById('sidebar').setAttribute('aria-label', t('nav.label'));
}

function renderShell() {
  document.getElementById('skip').textContent = t('skip');
  renderHeader();
  renderNav();
  document.getElementById('toasts').setAttribute('aria-label', 'Notifications');
}

function pageHeader(title, lead, actions, crumbs) {
  return h(
    'div',
    { class: 'page-head' },
    h(
      'div',
      { class: 'page-title' },
      crumbs ? h('p', { class: 'crumbs' }, crumbs) : null,
      h('h1', { tabindex: '-1' }, title),
      lead ? h('p', { class: 'lead' }, lead) : null,
    ),
    actions ? h('div', { class: 'page-actions' }, actions) : null,
  );
}

function setTitle(s) {
  document.title = s ? `${s} · snapvirt` : 'snapvirt';
}

// ---- views -------------------------------------------------------------------------------------

class InstancesView {
  mount(root) {
    setTitle(t('instances.title'));
    this.filter = '';
    this.loaded = false;
    this.error = null;
    const filter = h('input', { type: 'search', class: 'search', 'aria-label': t('instances.filter'), placeholder: t('instances.filter.placeholder'), 'data-key': 'filter' });
    filter.addEventListener('input', () => {
      this.filter = filter.value.trim().toLowerCase();
      this.update();
    });
    this.count = h('span', { class: 'muted count' });
    this.banner = h('div');
    this.body = h('div', { class: 'table-wrap' });
    root.replaceChildren(
      pageHeader(t('instances.title'), t('instances.lead')),
      this.banner,
      h('section', { class: 'card', 'aria-labelledby': 'instances-h' }, h('div', { class: 'card-head' }, h('h2', { id: 'instances-h', class: 'sr-only' }, t('instances.title')), h('div', { class: 'search-box' }, icon('search', 'icon icon-sm'), filter), this.count), this.body),
    );
    this.refresh();
  }

  async refresh() {
    try {
      await loadInstances();
      this.error = null;
      // Running jobs, for the activity column.
      const r = await api.get('/v1/jobs?state=running&limit=100');
      for (const j of r.items) putJob(j);
    } catch (e) {
      this.error = e;
    }
    this.loaded = true;
    this.update();
  }

  update() {
    const all = [...store.instances.values()].sort((a, b) => a.name.localeCompare(b.name));
    const list = this.filter ? all.filter((i) => i.name.toLowerCase().includes(this.filter)) : all;
    swap(this.banner, all.some((i) => i.stale) ? h('div', { class: 'notice notice-warn' }, icon('alert'), h('p', {}, t('stale.banner'))) : null, this.error ? errorBox(this.error, () => this.refresh()) : null);
    this.count.textContent = store.instancesLoaded ? (list.length === 1 ? t('instances.count.one') : t('instances.count', { n: list.length })) : '';
    const rows = !this.loaded && !store.instancesLoaded
      ? [loadingRow(6)]
      : list.length
        ? list.map((i) => this.row(i))
        : [h('tr', {}, h('td', { colspan: 6, class: 'empty' }, all.length ? t('instances.nomatch') : t('instances.empty')))];
    swap(
      this.body,
      h(
        'table',
        { class: 'table' },
        h('thead', {}, h('tr', {}, ['col.name', 'col.state', 'col.snapshots', 'col.vcpus', 'col.memory', 'col.activity'].map((k, n) => h('th', { scope: 'col', class: n >= 2 && n <= 4 ? 'num' : null }, t(k))))),
        h('tbody', {}, rows),
      ),
    );
  }

  row(i) {
    const job = i.busy_job_id ? store.jobs.get(i.busy_job_id) : null;
    return h(
      'tr',
      { class: i.stale ? 'is-stale' : null },
      h('td', {}, h('a', { href: '#/instances/' + enc(i.name), class: 'strong-link', 'data-key': 'inst-' + i.uuid }, i.name), ' ', instanceFlags(i)),
      h('td', {}, instanceBadge(i)),
      h('td', { class: 'num' }, String(i.snapshot_count)),
      h('td', { class: 'num' }, String(i.vcpus)),
      h('td', { class: 'num' }, t('unit.mib', { n: i.memory_mib })),
      h('td', {}, i.busy_job_id ? h('span', { class: 'badge sstate-creating', title: t('busy.title') }, spinner(), job ? `${t('kind.' + job.kind)} · ${phaseText(job)}` : t('busy')) : h('span', { class: 'muted' }, t('none'))),
    );
  }

  onEvent(type) {
    if (type === 'instance.updated' || type === 'job.updated') scheduleUpdate();
  }
}

class InstanceView {
  constructor(name) {
    this.name = name;
  }

  mount(root) {
    setTitle(this.name);
    this.uuid = null;
    this.error = null;
    this.loaded = false;
    this.head = h('div');
    this.banner = h('div');
    this.details = h('dl', { class: 'details' });
    this.activity = h('div', { class: 'table-wrap' });
    this.panelBody = h('div', { class: 'table-wrap' });
    this.takeBtn = h('button', { type: 'button', class: 'btn btn-primary', 'aria-label': NAMES.take, disabled: true, onclick: () => this.take() }, icon('camera', 'icon icon-sm'), t('take'));
    this.panelCount = h('span', { class: 'count-pill' });
    this.schedules = new SchedulesCard(() => this.inst());
    root.replaceChildren(
      this.head,
      this.banner,
      h(
        'div',
        { class: 'split' },
        h(
          'div',
          { class: 'split-side' },
          h('section', { class: 'card', 'aria-labelledby': 'details-h' }, h('div', { class: 'card-head' }, h('h2', { id: 'details-h' }, t('instance.details'))), this.details),
          h('section', { class: 'card', 'aria-labelledby': 'activity-h' }, h('div', { class: 'card-head' }, h('h2', { id: 'activity-h' }, t('instance.activity'))), this.activity),
        ),
        h(
          'div',
          { class: 'split-main' },
          h(
            'section',
            { class: 'card panel', 'aria-labelledby': 'panel-h', id: 'snapshot-panel' },
            h('div', { class: 'card-head' }, h('h2', { id: 'panel-h' }, t('panel.title')), this.panelCount, h('div', { class: 'card-actions' }, this.takeBtn)),
            this.panelBody,
          ),
          this.schedules.card,
        ),
      ),
    );
    this.renderHead();
    this.refresh();
  }

  async refresh() {
    try {
      const since = now();
      const inst = await api.get(`/v1/instances/${enc(this.name)}`);
      putInstance(inst, since);
      this.uuid = inst.uuid;
      // Snapshots known before the request and missing from its answer are gone; ones that came
      // in meanwhile (a create from this page, an event) stay.
      const before = new Set(snapshotsOf(inst.uuid).map((s) => s.id));
      const [snaps, jobs] = await Promise.all([api.get(`/v1/instances/${enc(inst.uuid)}/snapshots`), api.get(`/v1/jobs${query({ instance: inst.uuid, limit: 10 })}`)]);
      const seen = new Set(snaps.items.map((s) => s.id));
      for (const id of before) if (!seen.has(id) && fresh('s:' + id, since)) store.snapshots.delete(id);
      for (const s of snaps.items) putSnapshot(s, since);
      for (const j of jobs.items) putJob(j);
      this.error = null;
      await this.schedules.refresh(inst.uuid);
    } catch (e) {
      this.error = e;
    }
    this.loaded = true;
    this.update();
  }

  inst() {
    return this.uuid ? store.instances.get(this.uuid) : null;
  }

  renderHead() {
    const inst = this.inst();
    swap(
      this.head,
      pageHeader(
        h('span', { class: 'title-with-badge' }, this.name, inst ? instanceBadge(inst) : null, inst ? instanceFlags(inst) : null),
        null,
        null,
        [h('span', {}, t('nav.compute')), h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'), h('span', {}, t('nav.instances')), h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'), h('span', { 'aria-current': 'page' }, this.name)],
      ),
    );
  }

  update() {
    const inst = this.inst();
    this.renderHead();
    if (this.error) {
      const notFound = this.error instanceof ApiError && this.error.code === 'instance_not_found';
      swap(this.banner, notFound ? h('div', { class: 'notice notice-warn' }, icon('alert'), h('p', {}, t('instance.notfound', { name: this.name }))) : errorBox(this.error, () => this.refresh()));
    } else swap(this.banner, inst && inst.stale ? h('div', { class: 'notice notice-warn' }, icon('alert'), h('p', {}, t('stale.banner'))) : null);
    this.takeBtn.disabled = !inst || inst.defined === false;
    if (!inst) {
      swap(this.details, this.loaded ? null : h('p', { class: 'loading' }, spinner(), ' ', t('loading')));
      swap(this.panelBody, this.loaded ? null : h('p', { class: 'loading' }, spinner(), ' ', t('loading')));
      return;
    }
    this.renderDetails(inst);
    this.renderActivity(inst);
    this.renderPanel(inst);
    this.schedules.update(inst);
  }

  renderDetails(inst) {
    const current = inst.current_snapshot_id ? store.snapshots.get(inst.current_snapshot_id) : null;
    const busy = inst.busy_job_id ? store.jobs.get(inst.busy_job_id) : null;
    const row = (k, v) => [h('dt', {}, t(k)), h('dd', {}, v)];
    swap(
      this.details,
      row('instance.state', [instanceBadge(inst), ' ', instanceFlags(inst)]),
      row('instance.vcpus', String(inst.vcpus)),
      row('instance.memory', t('unit.mib', { n: inst.memory_mib })),
      row('instance.snapshots', String(inst.snapshot_count)),
      row('instance.current', current ? h('a', { href: '#/snapshots/' + enc(current.id), 'data-key': 'current-link' }, current.display_name) : t('none')),
      inst.busy_job_id ? row('instance.job', busy ? [spinner(), ' ', `${t('kind.' + busy.kind)} · ${phaseText(busy)}`] : t('busy')) : null,
      row('instance.uuid', h('code', { class: 'mono' }, inst.uuid)),
    );
  }

  renderActivity(inst) {
    const jobs = [...store.jobs.values()].filter((j) => j.instance.uuid === inst.uuid).sort((a, b) => (a.created_at < b.created_at ? 1 : -1)).slice(0, 6);
    if (!jobs.length) {
      swap(this.activity, h('p', { class: 'empty' }, t('instance.activity.empty')));
      return;
    }
    swap(
      this.activity,
      h(
        'ul',
        { class: 'activity' },
        jobs.map((j) => {
          const s = j.snapshot_id ? store.snapshots.get(j.snapshot_id) : null;
          return h(
            'li',
            { 'data-job-id': j.id },
            h('div', { class: 'activity-line' }, h('span', { class: 'activity-what' }, h('strong', {}, t('kind.' + j.kind)), s ? h('span', { class: 'activity-snap' }, ' · ' + s.display_name) : null), jobBadge(j)),
            h('div', { class: 'sub' }, timeEl(j.created_at)),
            j.error ? h('div', { class: 'sub error-text' }, j.error.message) : null,
          );
        }),
      ),
    );
  }

  renderPanel(inst) {
    // A snapshot being taken has no parent yet; it will be the current one's child, so show it there.
    const provisional = (s) =>
      s.state === 'creating' && !s.parent_id && inst.current_snapshot_id && inst.current_snapshot_id !== s.id ? { ...s, parent_id: inst.current_snapshot_id } : s;
    const list = treeOrder(snapshotsOf(inst.uuid).map(provisional));
    this.panelCount.textContent = String(list.length);
    if (!list.length) {
      swap(this.panelBody, h('div', { class: 'empty-state' }, icon('camera', 'icon icon-lg'), h('p', {}, t('panel.empty'))));
      return;
    }
    const byId = new Map(list.map(({ s }) => [s.id, s]));
    swap(
      this.panelBody,
      h(
        'table',
        { class: 'table tree' },
        h('thead', {}, h('tr', {}, ['col.display_name', 'col.mode', 'col.state', 'col.created'].map((k) => h('th', { scope: 'col' }, t(k))))),
        h(
          'tbody',
          {},
          list.map(({ s, depth }) => {
            const parent = s.parent_id ? byId.get(s.parent_id) : null;
            return h(
              'tr',
              { 'data-snapshot-id': s.id, class: ['depth-' + Math.min(depth, 8), s.is_current ? 'is-current' : null], 'aria-level': null },
              h(
                'td',
                { class: 'name-cell' },
                depth ? h('span', { class: 'elbow', 'aria-hidden': 'true' }) : null,
                h('span', { class: 'name-line' }, h('a', { href: '#/snapshots/' + enc(s.id), class: 'strong-link', 'data-key': 'snap-' + s.id, title: parent ? t('panel.childof', { name: parent.display_name }) : null }, s.display_name), s.is_current ? currentPill() : null, scheduleTag(s)),
                parent ? h('span', { class: 'sr-only' }, ', ' + t('panel.childof', { name: parent.display_name })) : null,
                s.description ? h('div', { class: 'sub' }, s.description) : null,
              ),
              h('td', {}, modeTag(s.mode)),
              h('td', {}, snapshotStateBadge(s), s.error ? h('div', { class: 'sub error-text' }, s.error.message) : null),
              h('td', { class: 'nowrap' }, timeEl(s.created_at)),
            );
          }),
        ),
      ),
    );
  }

  take() {
    const inst = this.inst();
    if (inst) openCreateDialog(inst);
  }

  onEvent(type, data) {
    if (!this.uuid) return;
    const uuid = type === 'instance.updated' ? data.uuid : data.instance ? data.instance.uuid : null;
    if (uuid === this.uuid || type.startsWith('schedule.')) scheduleUpdate();
  }
}

// ---- schedules ---------------------------------------------------------------------------------

// The Schedules card on an instance's page: its schedules with their next and last run, live
// from the schedule.* events; add, edit, enable/disable and delete.
class SchedulesCard {
  constructor(instOf) {
    this.instOf = instOf;
    this.uuid = null;
    this.error = null;
    this.loaded = false;
    this.body = h('div', { class: 'table-wrap' });
    this.count = h('span', { class: 'count-pill' });
    this.addBtn = h('button', { type: 'button', class: 'btn', 'aria-label': NAMES.addSchedule, disabled: true, onclick: () => this.instOf() && openScheduleDialog(this.instOf(), null) }, icon('plus', 'icon icon-sm'), t('sched.add'));
    this.card = h(
      'section',
      { class: 'card', 'aria-labelledby': 'sched-h', id: 'schedule-card' },
      h('div', { class: 'card-head' }, h('h2', { id: 'sched-h' }, t('sched.title')), this.count, h('div', { class: 'card-actions' }, this.addBtn)),
      this.body,
    );
  }

  async refresh(uuid) {
    this.uuid = uuid;
    const since = now();
    try {
      const r = await api.get(`/v1/instances/${enc(uuid)}/schedules`);
      const seen = new Set(r.items.map((x) => x.id));
      for (const x of [...store.schedules.values()]) if (x.instance.uuid === uuid && !seen.has(x.id) && fresh('c:' + x.id, since)) store.schedules.delete(x.id);
      for (const x of r.items) if (fresh('c:' + x.id, since)) store.schedules.set(x.id, x);
      this.error = null;
    } catch (e) {
      this.error = e; // shown in the card; the rest of the page stands
    }
    this.loaded = true;
  }

  list() {
    return [...store.schedules.values()].filter((x) => x.instance.uuid === this.uuid).sort((a, b) => a.name.localeCompare(b.name));
  }

  update(inst) {
    this.addBtn.disabled = !inst || inst.defined === false;
    const list = this.list();
    this.count.textContent = String(list.length);
    if (this.error) {
      swap(this.body, errorBox(this.error, async () => {
        await this.refresh(this.uuid);
        scheduleUpdate();
      }));
      return;
    }
    if (!this.loaded) {
      swap(this.body, h('p', { class: 'loading' }, spinner(), ' ', t('loading')));
      return;
    }
    if (!list.length) {
      swap(this.body, h('div', { class: 'empty-state' }, icon('clock', 'icon icon-lg'), h('p', {}, t('sched.empty'))));
      return;
    }
    swap(
      this.body,
      h(
        'table',
        { class: 'table table-compact schedules' },
        h('thead', {}, h('tr', {}, ['sched.col.name', 'sched.col.when', 'sched.col.retention', 'sched.col.next', 'sched.col.last', 'sched.col.enabled'].map((k) => h('th', { scope: 'col', class: k === 'sched.col.enabled' ? 'row-actions' : null }, t(k))))),
        h('tbody', {}, list.map((x) => this.row(x))),
      ),
    );
  }

  row(x) {
    const toggle = h('input', { type: 'checkbox', role: 'switch', class: 'switch', 'aria-label': `Enable ${x.name}`, title: t(x.enabled ? 'sched.enabled.on' : 'sched.enabled.off'), checked: x.enabled, 'data-key': 'sw-' + x.id });
    toggle.addEventListener('change', async () => {
      toggle.disabled = true;
      try {
        const updated = await api.patch(`/v1/schedules/${enc(x.id)}`, { enabled: toggle.checked });
        touched.set('c:' + updated.id, now());
        store.schedules.set(updated.id, updated);
        toast({ kind: 'success', text: t(updated.enabled ? 'sched.enabled.done' : 'sched.disabled.done', { name: updated.name }) });
      } catch (e) {
        toggle.checked = !toggle.checked;
        toast({ kind: 'error', text: t('sched.save.failed', { name: x.name, message: e.message }) });
      } finally {
        toggle.disabled = false;
      }
      scheduleUpdate();
    });
    const run = x.last_run;
    return h(
      'tr',
      { 'data-schedule-id': x.id, class: x.enabled ? null : 'is-disabled' },
      h('td', { class: 'sched-name' }, h('strong', {}, x.name), x.display_name_template && x.display_name_template !== DEFAULT_TEMPLATE ? h('div', { class: 'sub', title: t('sched.template') }, x.display_name_template) : null),
      h('td', {}, h('code', { class: 'mono cron' }, x.cron), h('div', { class: 'sub' }, x.timezone)),
      h('td', {}, modeTag(x.mode), h('div', { class: 'sub nowrap' }, retentionText(x))),
      h('td', { class: 'nowrap sched-next' }, x.enabled && x.next_run_at ? [timeEl(x.next_run_at), h('div', { class: 'sub' }, fmtRelative(x.next_run_at))] : h('span', { class: 'muted' }, x.enabled ? t('none') : t('sched.disabled'))),
      h('td', { class: 'sched-last' }, run ? [outcomeBadge(run), h('div', { class: 'sub' }, timeEl(run.at)), run.error ? h('div', { class: 'sub error-text' }, run.error.message) : null] : h('span', { class: 'muted' }, t('sched.never'))),
      h(
        'td',
        { class: 'nowrap row-actions' },
        h(
          'span',
          { class: 'actions-line' },
          toggle,
          h('button', { type: 'button', class: 'btn-icon', 'aria-label': `Edit schedule ${x.name}`, title: t('edit'), 'data-key': 'ed-' + x.id, onclick: () => openScheduleDialog(this.instOf() || { uuid: x.instance.uuid, name: x.instance.name, state: 'other' }, store.schedules.get(x.id) || x) }, icon('edit', 'icon icon-sm')),
          h('button', { type: 'button', class: 'btn-icon btn-icon-danger', 'aria-label': `Delete schedule ${x.name}`, title: t('delete'), 'data-key': 'del-' + x.id, onclick: () => openScheduleDeleteDialog(store.schedules.get(x.id) || x) }, icon('trash', 'icon icon-sm')),
        ),
      ),
    );
  }
}

// The contract's default for display_name_template (docs/api.md, "Schedules").
const DEFAULT_TEMPLATE = '{schedule} {datetime}';

const CRON_EXAMPLES = [
  ['0 2 * * *', 'sched.cron.ex.daily'],
  ['0 */6 * * *', 'sched.cron.ex.6h'],
  ['30 1 * * sun', 'sched.cron.ex.weekly'],
  ['0 8-18 * * mon-fri', 'sched.cron.ex.office'],
  ['@hourly', 'sched.cron.ex.hourly'],
];

// Add (sched null) or edit a schedule. A value the API refuses is shown at its field.
function openScheduleDialog(inst, sched) {
  const editing = !!sched;
  const v = sched || {};
  const fieldErrors = [];
  const withError = (control) => {
    const errEl = h('p', { class: 'field-error', id: uid('err'), hidden: true });
    fieldErrors.push({ control, errEl });
    return errEl;
  };
  const input = (props) => h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', ...props });

  const nameInput = input({ 'aria-label': NAMES.scheduleName, maxlength: '64', value: v.name || '', 'data-autofocus': '' });
  const cronInput = input({ 'aria-label': NAMES.cron, value: v.cron || '', placeholder: '0 2 * * *', class: 'mono' });
  const examples = h(
    'div',
    { class: 'cron-examples' },
    CRON_EXAMPLES.map(([expr, key]) =>
      h('button', { type: 'button', class: 'chip', title: t(key), onclick: () => { cronInput.value = expr; cronInput.focus(); } }, h('code', {}, expr), ' ', h('span', { class: 'muted' }, t(key))),
    ),
  );

  const mkChoice = (value, label, aname, hint) => {
    const hintId = uid('hint');
    const radio = h('input', { type: 'radio', name: 'sched-mode', value, 'aria-label': aname, 'aria-describedby': hintId, checked: (v.mode || 'memory') === value });
    return { radio, el: h('label', { class: 'choice' }, radio, h('span', { class: 'choice-text' }, h('span', { class: 'choice-title' }, icon(value === 'memory' ? 'chip' : 'power', 'icon icon-sm'), label), h('span', { class: 'choice-hint', id: hintId }, hint))) };
  };
  const memory = mkChoice('memory', t('create.memory'), NAMES.memory, t('sched.memory.hint'));
  const stopped = mkChoice('stopped', t('create.stopped'), NAMES.stopped, t('sched.stopped.hint'));

  const keepInput = h('input', { type: 'number', min: '1', step: '1', inputmode: 'numeric', class: 'input-narrow', 'aria-label': NAMES.keepLast, value: v.keep_last ?? '' });
  const ageInput = input({ 'aria-label': NAMES.maxAge, class: 'input-narrow', placeholder: '7d', value: v.max_age || '' });

  const tzInput = input({ 'aria-label': NAMES.timezone, value: v.timezone || '', placeholder: 'UTC', list: uid('tz') });
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  const tzList = h('datalist', { id: tzInput.getAttribute('list') }, ['UTC', ...zones].map((z) => h('option', { value: z })));
  const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const templateInput = input({ 'aria-label': NAMES.template, maxlength: '255', value: v.display_name_template || '', placeholder: '{schedule} {datetime}' });
  const jitterInput = h('input', { type: 'number', min: '0', max: '3600', step: '1', inputmode: 'numeric', class: 'input-narrow', 'aria-label': NAMES.jitter, value: v.jitter_s ? String(v.jitter_s) : '', placeholder: '0' });
  const timeoutInput = h('input', { type: 'number', min: '1', max: '86400', step: '1', inputmode: 'numeric', class: 'input-narrow', 'aria-label': NAMES.timeout, placeholder: '120', value: v.shutdown_timeout_s ?? '' });
  const force = h('input', { type: 'checkbox', 'aria-label': NAMES.force, checked: !!v.force_stop });
  const keep = h('input', { type: 'checkbox', 'aria-label': NAMES.keep, checked: !!v.keep_stopped });
  const enabled = h('input', { type: 'checkbox', 'aria-label': NAMES.enabled, checked: v.enabled !== false });
  const check = (box, label, hint) => {
    const hintId = uid('hint');
    box.setAttribute('aria-describedby', hintId);
    return h('label', { class: 'check' }, box, h('span', {}, h('span', { class: 'check-title' }, label), h('span', { class: 'choice-hint', id: hintId }, hint)));
  };
  const withErr = (f, control) => {
    f.append(withError(control));
    return f;
  };
  const stopOptions = h(
    'div',
    { class: 'suboptions' },
    withErr(field({ label: t('create.timeout'), control: timeoutInput, hint: t('create.timeout.hint') }), timeoutInput),
    check(force, t('create.force'), t('create.force.hint')),
    check(keep, t('create.keep'), t('create.keep.hint')),
  );
  const syncStop = () => {
    stopOptions.hidden = !stopped.radio.checked;
  };
  memory.radio.addEventListener('change', syncStop);
  stopped.radio.addEventListener('change', syncStop);
  syncStop();

  const modeSet = h('fieldset', { class: 'choices' }, h('legend', {}, t('sched.mode')), memory.el, stopped.el, stopOptions);
  const advanced = h(
    'details',
    { class: 'advanced', open: editing && (v.timezone !== 'UTC' || (v.display_name_template && v.display_name_template !== DEFAULT_TEMPLATE) || v.jitter_s) ? true : null },
    h('summary', {}, t('sched.advanced')),
    h(
      'div',
      { class: 'advanced-body' },
      withErr(field({ label: t('sched.timezone'), control: tzInput, hint: t('sched.timezone.hint', { zone: localZone || 'UTC' }) }), tzInput),
      tzList,
      withErr(field({ label: t('sched.template'), control: templateInput, hint: t('sched.template.hint') }), templateInput),
      withErr(field({ label: t('sched.jitter'), control: jitterInput, hint: t('sched.jitter.hint') }), jitterInput),
    ),
  );

  const body = [
    h('p', { class: 'dialog-lead dialog-instance' }, icon('server', 'icon icon-sm'), h('strong', {}, inst.name), inst.state ? instanceBadge(inst) : null),
    withErr(field({ label: t('sched.name'), control: nameInput, hint: t('sched.name.hint') }), nameInput),
    h('div', { class: 'field' }, h('label', { for: cronInput.id || (cronInput.id = uid('f')) }, t('sched.cron')), cronInput, h('p', { class: 'hint', id: cronInput.id + '-hint' }, t('sched.cron.hint')), examples, withError(cronInput)),
    modeSet,
    h(
      'div',
      { class: 'field-row' },
      withErr(field({ label: t('sched.keep_last'), control: keepInput, hint: t('sched.keep_last.hint') }), keepInput),
      withErr(field({ label: t('sched.max_age'), control: ageInput, hint: t('sched.max_age.hint') }), ageInput),
    ),
    advanced,
    check(enabled, t('sched.enabled'), t('sched.enabled.hint')),
  ];
  cronInput.setAttribute('aria-describedby', cronInput.id + '-hint');

  // The field the API names: its control gets the message under it (and the focus).
  const controlFor = {
    name: nameInput,
    cron: cronInput,
    mode: memory.radio,
    keep_last: keepInput,
    max_age: ageInput,
    timezone: tzInput,
    display_name_template: templateInput,
    jitter_s: jitterInput,
    shutdown_timeout_s: timeoutInput,
    force_stop: force,
    keep_stopped: keep,
    enabled,
  };
  const clearFieldErrors = () => {
    for (const { control, errEl } of fieldErrors) {
      errEl.hidden = true;
      errEl.textContent = '';
      control.removeAttribute('aria-invalid');
      control.removeAttribute('aria-errormessage');
    }
  };
  const showFieldError = (fieldName, message) => {
    const control = controlFor[fieldName];
    const entry = fieldErrors.find((e) => e.control === control);
    if (!entry) return false;
    if (advanced.contains(control)) advanced.open = true;
    entry.errEl.textContent = message;
    entry.errEl.hidden = false;
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('aria-errormessage', entry.errEl.id);
    control.focus();
    return true;
  };
  const numberOrNull = (el) => (el.value.trim() === '' ? null : Number(el.value));

  openDialog({
    name: editing ? NAMES.dialogEditSchedule : NAMES.dialogAddSchedule,
    title: editing ? t('sched.edit.title') : t('sched.add.title'),
    body,
    primary: editing ? t('edit.save') : t('create.submit'),
    primaryName: editing ? NAMES.save : NAMES.create,
    wide: true,
    async submit(ctx) {
      clearFieldErrors();
      const mode = stopped.radio.checked ? 'stopped' : 'memory';
      const req = { name: nameInput.value.trim(), cron: cronInput.value.trim(), mode, enabled: enabled.checked };
      const keepN = numberOrNull(keepInput);
      const age = ageInput.value.trim();
      const tz = tzInput.value.trim();
      const template = templateInput.value.trim();
      const jitter = numberOrNull(jitterInput);
      if (editing) {
        req.keep_last = keepN;
        req.max_age = age || null;
        req.display_name_template = template || null;
        req.timezone = tz || 'UTC';
        req.jitter_s = jitter ?? 0;
      } else {
        if (keepN !== null) req.keep_last = keepN;
        if (age) req.max_age = age;
        if (template) req.display_name_template = template;
        if (tz) req.timezone = tz;
        if (jitter !== null) req.jitter_s = jitter;
      }
      if (mode === 'stopped') {
        const n = numberOrNull(timeoutInput);
        if (n !== null) req.shutdown_timeout_s = n;
        req.force_stop = force.checked;
        req.keep_stopped = keep.checked;
      }
      try {
        const saved = editing ? await api.patch(`/v1/schedules/${enc(sched.id)}`, req) : await api.post(`/v1/instances/${enc(inst.uuid)}/schedules`, req);
        touched.set('c:' + saved.id, now());
        store.schedules.set(saved.id, saved);
        scheduleUpdate();
        toast({ kind: 'success', text: t(editing ? 'sched.saved' : 'sched.created', { name: saved.name }) });
        return true;
      } catch (e) {
        if (e instanceof ApiError && e.details && e.details.field) {
          let message = e.message;
          const part = e.details.cron_field;
          if (part) message += ' ' + t('sched.cron.part', { part: t('sched.cron.field.' + part) });
          if (showFieldError(e.details.field, message)) return false;
        }
        throw e;
      }
    },
  });
}

function openScheduleDeleteDialog(sched) {
  const taken = [...store.snapshots.values()].filter((s) => s.schedule_id === sched.id).length;
  const withSnapshots = h('input', { type: 'checkbox', 'aria-label': NAMES.withSnapshots });
  const hintId = uid('hint');
  withSnapshots.setAttribute('aria-describedby', hintId);
  const question = t('sched.delete.question', { name: '\u0001', instance: '\u0002' })
    .split(/(\u0001|\u0002)/)
    .map((p) => (p === '\u0001' ? h('strong', {}, sched.name) : p === '\u0002' ? h('strong', {}, sched.instance.name) : p));
  const ctx = openDialog({
    name: NAMES.dialogDeleteSchedule,
    title: t('sched.delete.title'),
    body: [
      h('p', { class: 'dialog-lead' }, question),
      h('div', { class: 'notice notice-info' }, icon('info'), h('div', { class: 'notice-body' }, h('p', {}, t('sched.delete.keeps')))),
      h('label', { class: 'check' }, withSnapshots, h('span', {}, h('span', { class: 'check-title' }, t('sched.delete.snapshots')), h('span', { class: 'choice-hint', id: hintId }, t('sched.delete.snapshots.hint', { n: taken })))),
    ],
    primary: [icon('trash', 'icon icon-sm'), t('ok')],
    primaryClass: 'btn-danger',
    primaryName: NAMES.ok,
    async submit() {
      await api.del(`/v1/schedules/${enc(sched.id)}${withSnapshots.checked ? '?snapshots=true' : ''}`);
      touched.set('c:' + sched.id, now());
      store.schedules.delete(sched.id);
      scheduleUpdate();
      toast({ kind: 'success', text: t(withSnapshots.checked ? 'sched.deleted.with' : 'sched.deleted', { name: sched.name }) });
      return true;
    },
  });
  ctx.dialog.querySelector('[data-cancel]').focus();
}

function jobBadge(j) {
  const cls = j.state === 'succeeded' ? 'sstate-ready' : j.state === 'failed' ? 'sstate-error' : j.state === 'cancelled' ? 'sstate-missing' : 'sstate-creating';
  return h('span', { class: ['badge', cls] }, TERMINAL.has(j.state) ? h('span', { class: 'dot', 'aria-hidden': 'true' }) : spinner(), TERMINAL.has(j.state) ? t('jstate.' + j.state) : phaseText(j));
}

class OverviewView {
  constructor(params) {
    this.filters = { instance: params.get('instance') || '', state: params.get('state') || '', mode: params.get('mode') || '', q: params.get('q') || '' };
    const limit = Number(params.get('limit'));
    this.limit = Number.isInteger(limit) && limit >= 1 && limit <= 1000 ? limit : 25;
  }

  mount(root) {
    setTitle(t('overview.title'));
    this.cursors = [null];
    this.page = 0;
    this.items = null;
    this.next = null;
    this.selected = new Map();
    this.error = null;
    this.seq = 0;

    const selectField = (label, key, options) => {
      const sel = h('select', { 'data-key': 'f-' + key }, options.map(([v, l]) => h('option', { value: v, selected: v === this.filters[key] }, l)));
      sel.addEventListener('change', () => {
        this.filters[key] = sel.value;
        this.resetPaging();
      });
      const id = uid('flt');
      sel.id = id;
      return { sel, el: h('div', { class: 'filter' }, h('label', { for: id }, label), sel) };
    };
    this.instanceFilter = selectField(t('overview.instance'), 'instance', [['', t('overview.instance.all')]]);
    const stateFilter = selectField(t('overview.state'), 'state', [['', t('overview.state.all')], ...['ready', 'creating', 'reverting', 'deleting', 'error', 'missing'].map((s) => [s, t('sstate.' + s)])]);
    const modeFilter = selectField(t('overview.mode'), 'mode', [['', t('overview.mode.all')], ...['memory', 'stopped', 'other'].map((m) => [m, t('mode.' + m)])]);
    const searchId = uid('flt');
    const search = h('input', { type: 'search', id: searchId, class: 'search', placeholder: t('overview.search.placeholder'), value: this.filters.q, 'data-key': 'f-q', autocomplete: 'off' });
    let timer = null;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.filters.q = search.value.trim();
        this.resetPaging();
      }, 250);
    });
    this.deleteBtn = h('button', { type: 'button', class: 'btn btn-danger', 'aria-label': NAMES.delete, title: t('delete'), disabled: true, onclick: () => this.deleteSelected() }, icon('trash', 'icon icon-sm'), h('span', {}, t('delete')));
    this.selInfo = h('span', { class: 'muted sel-info', 'aria-live': 'polite' });
    this.body = h('div', { class: 'table-wrap' });
    this.pager = h('div', { class: 'pager' });
    this.banner = h('div');
    root.replaceChildren(
      pageHeader(t('overview.title'), t('overview.lead'), null, [h('span', {}, t('nav.compute')), h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'), h('span', { 'aria-current': 'page' }, t('overview.title'))]),
      this.banner,
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'overview-h' },
        h('h2', { id: 'overview-h', class: 'sr-only' }, t('overview.title')),
        h(
          'div',
          { class: 'toolbar' },
          h('div', { class: 'filter filter-search' }, h('label', { for: searchId }, t('overview.search')), h('div', { class: 'search-box' }, icon('search', 'icon icon-sm'), search)),
          this.instanceFilter.el,
          stateFilter.el,
          modeFilter.el,
          h('div', { class: 'toolbar-spacer' }),
          this.selInfo,
          this.deleteBtn,
        ),
        this.body,
        this.pager,
      ),
    );
    this.fillInstances();
    this.refresh();
  }

  async fillInstances() {
    try {
      if (!store.instancesLoaded) await loadInstances();
    } catch {
      // the list shows its own error
    }
    const sel = this.instanceFilter.sel;
    const names = [...store.instances.values()].map((i) => i.name).sort((a, b) => a.localeCompare(b));
    if (this.filters.instance && !names.includes(this.filters.instance)) names.push(this.filters.instance);
    sel.replaceChildren(h('option', { value: '' }, t('overview.instance.all')), ...names.map((n) => h('option', { value: n, selected: n === this.filters.instance }, n)));
  }

  resetPaging() {
    this.cursors = [null];
    this.page = 0;
    this.selected.clear();
    const qs = query({ ...this.filters, limit: this.limit === 25 ? '' : this.limit });
    history.replaceState(null, '', '#/snapshots' + qs);
    this.refresh();
  }

  async refresh() {
    const seq = ++this.seq;
    const since = now();
    try {
      const r = await api.get('/v1/snapshots' + query({ ...this.filters, limit: this.limit, cursor: this.cursors[this.page] }));
      if (seq !== this.seq) return;
      for (const s of r.items) putSnapshot(s, since);
      needScheduleNames(r.items);
      this.items = r.items.map((s) => s.id);
      this.next = r.next_cursor;
      this.error = null;
      // Keep only selections that are still on the page.
      for (const id of [...this.selected.keys()]) if (!this.items.includes(id)) this.selected.delete(id);
      // A page emptied by deletions: step back.
      if (!this.items.length && this.page > 0) {
        this.page--;
        return this.refresh();
      }
    } catch (e) {
      if (seq !== this.seq) return;
      this.error = e;
    }
    this.update();
  }

  update() {
    swap(this.banner, this.error ? errorBox(this.error, () => this.refresh()) : null);
    const snaps = (this.items || []).map((id) => store.snapshots.get(id)).filter(Boolean);
    this.deleteBtn.disabled = this.selected.size === 0;
    this.selInfo.textContent = this.selected.size ? t('overview.selected', { n: this.selected.size }) : '';
    const filtered = Object.values(this.filters).some(Boolean);
    const all = h('input', { type: 'checkbox', 'aria-label': t('overview.selectall'), 'data-key': 'sel-all', checked: snaps.length > 0 && snaps.every((s) => this.selected.has(s.id)), indeterminate: this.selected.size > 0 && !snaps.every((s) => this.selected.has(s.id)), disabled: !snaps.length });
    all.addEventListener('change', () => {
      if (all.checked) for (const s of snaps) this.selected.set(s.id, s);
      else this.selected.clear();
      this.update();
    });
    const cols = 7;
    let rows;
    if (this.items === null) rows = [loadingRow(cols)];
    else if (!snaps.length) rows = [h('tr', {}, h('td', { colspan: cols, class: 'empty' }, filtered ? t('overview.empty') : t('overview.none')))];
    else rows = snaps.map((s) => this.row(s));
    swap(
      this.body,
      h(
        'table',
        { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'check-col' }, all), ['col.display_name', 'col.instance', 'col.mode', 'col.state', 'col.created', 'col.size'].map((k) => h('th', { scope: 'col', class: k === 'col.size' ? 'num' : null }, t(k))))),
        h('tbody', {}, rows),
      ),
    );
    swap(
      this.pager,
      h('label', { class: 'rows' }, t('overview.rows'), ' ', this.rowsSelect()),
      h('div', { class: 'toolbar-spacer' }),
      h('span', { class: 'muted' }, t('overview.page', { n: this.page + 1 })),
      h('button', { type: 'button', class: 'btn', 'data-key': 'prev', disabled: this.page === 0, onclick: () => this.go(-1) }, icon('left', 'icon icon-sm'), t('overview.prev')),
      h('button', { type: 'button', class: 'btn', 'data-key': 'next', disabled: !this.next, onclick: () => this.go(1) }, t('overview.next'), icon('right', 'icon icon-sm')),
    );
  }

  rowsSelect() {
    const sizes = [10, 25, 50, 100];
    if (!sizes.includes(this.limit)) sizes.unshift(this.limit); // from the address (#/snapshots?limit=N)
    const sel = h('select', { 'data-key': 'rows' }, sizes.map((n) => h('option', { value: String(n), selected: n === this.limit }, String(n))));
    sel.addEventListener('change', () => {
      this.limit = Number(sel.value);
      this.resetPaging();
    });
    return sel;
  }

  go(delta) {
    if (delta > 0 && this.next) {
      this.cursors[this.page + 1] = this.next;
      this.page++;
    } else if (delta < 0 && this.page > 0) this.page--;
    this.selected.clear();
    this.refresh();
  }

  row(s) {
    const box = h('input', { type: 'checkbox', 'aria-label': t('overview.select', { name: s.display_name }), 'data-key': 'sel-' + s.id, checked: this.selected.has(s.id) });
    box.addEventListener('change', () => {
      if (box.checked) this.selected.set(s.id, s);
      else this.selected.delete(s.id);
      this.update();
    });
    return h(
      'tr',
      { 'data-snapshot-id': s.id, class: this.selected.has(s.id) ? 'is-selected' : null },
      h('td', { class: 'check-col' }, box),
      h('td', { class: 'name-cell' }, h('span', { class: 'name-line' }, h('a', { href: '#/snapshots/' + enc(s.id), class: 'strong-link', 'data-key': 'snap-' + s.id }, s.display_name), s.is_current ? currentPill() : null, scheduleTag(s)), s.description ? h('div', { class: 'sub' }, s.description) : null),
      h('td', { class: 'nowrap' }, h('a', { href: '#/instances/' + enc(s.instance.name), 'data-key': 'inst-' + s.id }, s.instance.name)),
      h('td', {}, modeTag(s.mode)),
      h('td', {}, snapshotStateBadge(s), s.error ? h('div', { class: 'sub error-text' }, s.error.message) : null),
      h('td', { class: 'nowrap' }, timeEl(s.created_at)),
      h('td', { class: 'num nowrap' }, fmtBytes(s.size_bytes)),
    );
  }

  deleteSelected() {
    const snaps = [...this.selected.keys()].map((id) => store.snapshots.get(id) || this.selected.get(id)).filter(Boolean);
    if (snaps.length)
      openDeleteDialog(snaps, {
        afterDelete: () => {
          this.selected.clear();
          if (view === this) this.refresh();
        },
      });
  }

  onEvent(type, data) {
    if (type === 'snapshot.updated' || type === 'job.updated') scheduleUpdate();
    if (type === 'snapshot.created' || type === 'snapshot.deleted') {
      if (type === 'snapshot.deleted') this.selected.delete(data.id);
      clearTimeout(this.refetch);
      this.refetch = setTimeout(() => this.refresh(), 300);
      scheduleUpdate();
    }
    if (type === 'instance.updated' && !store.instances.has(data.uuid)) this.fillInstances();
    if (type.startsWith('schedule.')) scheduleUpdate();
  }
}

class SnapshotView {
  constructor(id) {
    this.id = id;
  }

  mount(root) {
    setTitle(t('overview.title'));
    this.error = null;
    this.gone = false;
    this.loaded = false;
    this.head = h('div');
    this.banner = h('div');
    this.status = h('div', { class: 'status', 'aria-live': 'polite' });
    this.details = h('dl', { class: 'details details-wide' });
    root.replaceChildren(
      this.head,
      this.banner,
      h(
        'div',
        { class: 'split split-wide' },
        h('section', { class: 'card', 'aria-labelledby': 'sdetails-h' }, h('div', { class: 'card-head' }, h('h2', { id: 'sdetails-h' }, t('instance.details'))), this.details),
        h('section', { class: 'card', 'aria-labelledby': 'status-h' }, h('div', { class: 'card-head' }, h('h2', { id: 'status-h' }, t('snapshot.status'))), this.status),
      ),
    );
    this.refresh();
  }

  async refresh() {
    const since = now();
    try {
      const s = await api.get(`/v1/snapshots/${enc(this.id)}`);
      putSnapshot(s, since);
      const [inst, siblings, jobs] = await Promise.all([
        api.get(`/v1/instances/${enc(s.instance.uuid)}`).catch(() => null),
        api.get(`/v1/instances/${enc(s.instance.uuid)}/snapshots`).catch(() => ({ items: [] })),
        api.get(`/v1/jobs${query({ instance: s.instance.uuid, limit: 50 })}`).catch(() => ({ items: [] })),
      ]);
      if (inst) putInstance(inst, since);
      for (const x of siblings.items) putSnapshot(x, since);
      for (const j of jobs.items) putJob(j);
      needScheduleNames([s]);
      this.error = null;
    } catch (e) {
      if (e instanceof ApiError && e.code === 'snapshot_not_found') {
        store.snapshots.delete(this.id);
        this.gone = true;
      } else this.error = e;
    }
    this.loaded = true;
    this.update();
  }

  update() {
    const s = store.snapshots.get(this.id);
    if (s) setTitle(s.display_name);
    const busy = s && BUSY_STATES.has(s.state);
    const revertBtn = h('button', { type: 'button', class: 'btn btn-primary', 'aria-label': NAMES.revert, 'data-key': 'revert', disabled: !s || busy || s.state === 'missing', onclick: () => openRevertDialog(store.snapshots.get(this.id)) }, icon('revert', 'icon icon-sm'), t('revert'));
    const editBtn = h('button', { type: 'button', class: 'btn', 'aria-label': NAMES.edit, 'data-key': 'edit', disabled: !s || busy, onclick: () => openEditDialog(store.snapshots.get(this.id)) }, icon('edit', 'icon icon-sm'), t('edit'));
    const deleteBtn = h(
      'button',
      {
        type: 'button',
        class: 'btn btn-danger',
        'aria-label': NAMES.delete,
        title: t('delete'),
        'data-key': 'delete',
        disabled: !s || s.state === 'deleting',
        onclick: () =>
          openDeleteDialog([store.snapshots.get(this.id)], {
            afterDelete: (job) => {
              if (job && job.state === 'succeeded' && view === this) location.hash = '#/snapshots';
            },
          }),
      },
      icon('trash', 'icon icon-sm'),
      h('span', {}, t('delete')),
    );
    const crumbs = [h('span', {}, t('nav.compute')), h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'), h('span', {}, t('snapshot.back')), h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'), h('span', { 'aria-current': 'page' }, s ? s.display_name : this.id)];
    swap(
      this.head,
      pageHeader(
        s ? h('span', { class: 'title-with-badge' }, s.display_name, s.is_current ? currentPill() : null) : t('loading'),
        s ? h('span', {}, modeTag(s.mode), ' ', snapshotStateBadge(s)) : null,
        s && !this.gone ? [revertBtn, editBtn, deleteBtn] : null,
        crumbs,
      ),
    );
    if (this.gone || (!s && this.loaded && !this.error)) {
      swap(this.banner, h('div', { class: 'notice notice-info' }, icon('info'), h('p', {}, this.gone && this.loaded ? t('snapshot.deleted') : t('snapshot.notfound'))));
      swap(this.details);
      swap(this.status);
      return;
    }
    swap(this.banner, this.error ? errorBox(this.error, () => this.refresh()) : null);
    if (!s) return;
    this.renderDetails(s);
    this.renderStatus(s);
  }

  renderDetails(s) {
    const all = snapshotsOf(s.instance.uuid);
    const parent = s.parent_id ? store.snapshots.get(s.parent_id) : null;
    const children = all.filter((x) => x.parent_id === s.id);
    const row = (k, v) => [h('dt', {}, t(k)), h('dd', {}, v)];
    const inst = store.instances.get(s.instance.uuid);
    swap(
      this.details,
      row('snapshot.instance', [h('a', { href: '#/instances/' + enc(s.instance.name), 'data-key': 'd-inst' }, s.instance.name), ' ', inst ? instanceBadge(inst) : null]),
      row('snapshot.description', s.description ? h('span', { class: 'prewrap' }, s.description) : h('span', { class: 'muted' }, t('none'))),
      row('snapshot.mode', modeTag(s.mode)),
      row('snapshot.method', h('span', { title: t('method.' + s.method + '.title'), 'data-key': 'd-method' }, t('method.' + s.method))),
      row('snapshot.state', snapshotStateBadge(s)),
      row('snapshot.created', timeEl(s.created_at, true)),
      row('snapshot.current', s.is_current ? t('snapshot.current.yes') : t('no')),
      row('snapshot.parent', parent ? h('a', { href: '#/snapshots/' + enc(parent.id), 'data-key': 'd-parent' }, parent.display_name) : t('none')),
      row('snapshot.children', children.length ? children.map((c, n) => [n ? ', ' : '', h('a', { href: '#/snapshots/' + enc(c.id), 'data-key': 'd-child-' + c.id }, c.display_name)]) : t('none')),
      row('snapshot.size', fmtBytes(s.size_bytes)),
      s.mode === 'memory' ? row('snapshot.paused', fmtDuration(s.guest_paused_ms)) : null,
      s.schedule_id ? row('snapshot.schedule', scheduleTag(s)) : null,
      row('snapshot.origin', t('snapshot.origin.' + s.origin) === 'snapshot.origin.' + s.origin ? s.origin : t('snapshot.origin.' + s.origin)),
      row('snapshot.name', h('code', { class: 'mono' }, s.name)),
      row('snapshot.id', h('code', { class: 'mono' }, s.id)),
      s.error ? row('snapshot.error', h('span', { class: 'error-text' }, s.error.message)) : null,
    );
  }

  renderStatus(s) {
    const jobs = [...store.jobs.values()].filter((j) => j.snapshot_id === s.id).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    if (!jobs.length) {
      swap(this.status, h('p', { class: 'empty' }, t('snapshot.nojob')));
      return;
    }
    const [latest, ...older] = jobs;
    const running = !TERMINAL.has(latest.state);
    const kind = latest.kind;
    const params = { name: s.display_name, instance: s.instance.name, message: latest.error ? latest.error.message : '' };
    const text = running ? t(kind + '.started', params) : latest.state === 'succeeded' ? t(kind + '.done', params) : t(kind + '.failed', { ...params, message: latest.error ? latest.error.message : t('jstate.' + latest.state) });
    const percent = latest.progress && latest.progress.percent;
    swap(
      this.status,
      h(
        'div',
        { class: ['job-status', 'job-' + latest.state], 'data-job-id': latest.id, 'data-job-state': latest.state },
        h('div', { class: 'job-line' }, running ? spinner() : icon(latest.state === 'succeeded' ? 'check' : 'alert'), h('p', { class: 'job-text' }, text)),
        running ? h('div', { class: ['progress', percent === null || percent === undefined ? 'indeterminate' : null], 'aria-hidden': 'true' }, h('span', { class: percent != null ? 'w-' + Math.round(percent / 5) * 5 : null })) : null,
        h('p', { class: 'sub' }, jobBadge(latest), ' ', timeEl(latest.finished_at || latest.started_at || latest.created_at)),
      ),
      older.length
        ? h(
            'ul',
            { class: 'job-history' },
            older.slice(0, 5).map((j) => h('li', {}, h('span', {}, t('kind.' + j.kind)), ' ', jobBadge(j), ' ', h('span', { class: 'muted' }, timeEl(j.created_at)))),
          )
        : null,
    );
  }

  onEvent(type, data) {
    if (type === 'snapshot.deleted' && data.id === this.id) {
      store.snapshots.delete(this.id);
      this.gone = true;
    }
    scheduleUpdate();
  }
}

// ---- routing -----------------------------------------------------------------------------------

function parseRoute() {
  const raw = (location.hash || '').replace(/^#/, '') || '/instances';
  const [path, qs] = raw.split('?');
  const params = new URLSearchParams(qs || '');
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  if (parts[0] === 'instances' && parts[1]) return { name: 'instance', arg: parts[1], params };
  if (parts[0] === 'snapshots' && parts[1]) return { name: 'snapshot', arg: parts[1], params };
  if (parts[0] === 'snapshots') return { name: 'overview', params };
  return { name: 'instances', params };
}

let view = null;

function mountRoute(focus) {
  const route = parseRoute();
  const main = document.getElementById('main');
  if (route.name === 'instance') view = new InstanceView(route.arg);
  else if (route.name === 'snapshot') view = new SnapshotView(route.arg);
  else if (route.name === 'overview') view = new OverviewView(route.params);
  else view = new InstancesView();
  renderNav();
  view.mount(main);
  if (focus) {
    const h1 = main.querySelector('h1');
    if (h1) h1.focus({ preventScroll: false });
  }
}

let updateQueued = false;
function scheduleUpdate() {
  if (updateQueued) return;
  updateQueued = true;
  requestAnimationFrame(() => {
    updateQueued = false;
    if (view) view.update();
  });
}

// ---- events ------------------------------------------------------------------------------------

function handleEvent(type, data) {
  switch (type) {
    case 'job.updated':
      onJob(data);
      break;
    case 'snapshot.created':
    case 'snapshot.updated':
      touched.set('s:' + data.id, now());
      store.snapshots.set(data.id, data);
      break;
    case 'snapshot.deleted':
      touched.set('s:' + data.id, now());
      store.snapshots.delete(data.id);
      break;
    case 'instance.updated':
      touched.set('i:' + data.uuid, now());
      store.instances.set(data.uuid, data);
      break;
    case 'schedule.created':
    case 'schedule.updated':
      touched.set('c:' + data.id, now());
      store.schedules.set(data.id, data);
      break;
    case 'schedule.deleted':
      touched.set('c:' + data.id, now());
      store.schedules.delete(data.id);
      break;
    case 'schedule.run':
      break; // its outcome comes with the schedule.updated that follows
    default:
      return;
  }
  if (view && view.onEvent) view.onEvent(type, data);
}

// ---- start -------------------------------------------------------------------------------------

function start() {
  takeTokenFromUrl();
  initLanguage();
  onTokenNeeded((message) => openSigninDialog(message));
  renderShell();
  document.getElementById('skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    const h1 = document.querySelector('#main h1');
    (h1 || document.getElementById('main')).focus();
  });
  window.addEventListener('hashchange', () => mountRoute(true));
  mountRoute(false);

  const stream = new EventStream({
    onEvent: handleEvent,
    onStatus(s) {
      connection = s;
      renderConnection();
    },
    onOpen(reconnected) {
      // The stream is authenticated now; the host may have changed (libvirt upgraded) meanwhile.
      loadHost();
      // Whatever happened while we were not listening: read it again.
      if (reconnected && view && view.refresh) view.refresh();
    },
  });
  stream.start();

  fetch('/healthz', { cache: 'no-store' })
    .then((r) => r.json())
    .then((j) => {
      store.version = j.version || '';
      renderNav();
    })
    .catch(() => {});
}

start();
