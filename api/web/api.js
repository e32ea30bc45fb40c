// Talking to snapvirtd: JSON requests with the bearer token, the contract's errors as ApiError,
// and the event stream (/v1/events) read with fetch() so it can carry the Authorization header.

const TOKEN_KEY = 'snapvirt.token';

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

// ---- the token ---------------------------------------------------------------------------------

// `#token=…` in the URL (as scripts/run prints it) goes into sessionStorage and out of the URL.
export function takeTokenFromUrl() {
  const hash = location.hash || '';
  const m = hash.match(/(?:^#|[#&?])token=([^&]*)/);
  if (!m) return false;
  const token = decodeURIComponent(m[1]);
  if (token) setToken(token);
  let rest = hash.slice(1).replace(/(^|[&?])token=[^&]*/, (m, sep) => (sep === '?' ? '?' : ''));
  rest = rest.replace(/\?&/, '?').replace(/[?&]$/, '').replace(/^&/, '');
  rest = '#' + (rest || '/instances');
  history.replaceState(null, '', location.pathname + location.search + rest);
  return true;
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: nothing to keep it in
  }
}

// The page sets this: asks the user for a token (a dialog) and resolves when one was given,
// rejects when they declined.
let tokenPrompt = null;
let pendingPrompt = null;
export function onTokenNeeded(fn) {
  tokenPrompt = fn;
}

function askForToken(message) {
  if (!pendingPrompt) {
    pendingPrompt = Promise.resolve(tokenPrompt ? tokenPrompt(message) : Promise.reject(new Error('no prompt')))
      .then((token) => {
        setToken(token);
        return token;
      })
      .finally(() => {
        pendingPrompt = null;
      });
  }
  return pendingPrompt;
}

// ---- requests ----------------------------------------------------------------------------------

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const token = getToken();
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}

export async function request(method, path, body, options = {}) {
  const extra = {};
  if (body !== undefined) extra['Content-Type'] = 'application/json';
  if (method === 'POST') extra['Idempotency-Key'] = options.idempotencyKey || newKey();
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: headers(extra),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      signal: options.signal,
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', options.networkMessage || 'snapvirtd cannot be reached.');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (res.status === 401 && !options.noPrompt) {
    const err = data && data.error;
    await askForToken(err ? err.message : '');
    return request(method, path, body, { ...options, idempotencyKey: extra['Idempotency-Key'] });
  }
  if (!res.ok) {
    const err = data && data.error;
    throw new ApiError(res.status, err ? err.code : 'http_' + res.status, err ? err.message : `HTTP ${res.status}`, err && err.details);
  }
  return data;
}

export const api = {
  get: (path, options) => request('GET', path, undefined, options),
  post: (path, body, options) => request('POST', path, body === undefined ? {} : body, options),
  patch: (path, body, options) => request('PATCH', path, body, options),
  del: (path, options) => request('DELETE', path, undefined, options),
};

export function enc(s) {
  return encodeURIComponent(s);
}

export function query(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    parts.push(enc(k) + '=' + enc(v));
  }
  return parts.length ? '?' + parts.join('&') : '';
}

// ---- the event stream --------------------------------------------------------------------------

// Reads /v1/events, hands each event to onEvent(type, data), reconnects with backoff and
// Last-Event-ID. onStatus('connecting' | 'live' | 'reconnecting'); onOpen(reconnected) once the
// server has subscribed us (its first chunk), so the page can re-read what it shows.
export class EventStream {
  constructor({ onEvent, onStatus, onOpen }) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onOpen = onOpen;
    this.lastId = null;
    this.stopped = false;
    this.controller = null;
    this.opens = 0;
  }

  start() {
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  // Drops the current connection and makes a new one at once (e.g. after a new token).
  restart() {
    if (this.controller) this.controller.abort();
  }

  async loop() {
    let backoff = 1000;
    this.onStatus('connecting');
    while (!this.stopped) {
      const controller = new AbortController();
      this.controller = controller;
      let watchdog = null;
      const feed = () => {
        clearTimeout(watchdog);
        // The daemon sends a heartbeat every 15 s; a silent minute means a dead connection.
        watchdog = setTimeout(() => controller.abort(), 60000);
      };
      try {
        const h = { Accept: 'text/event-stream' };
        const token = getToken();
        if (token) h.Authorization = 'Bearer ' + token;
        if (this.lastId) h['Last-Event-ID'] = this.lastId;
        feed();
        const res = await fetch('/v1/events', { headers: h, cache: 'no-store', signal: controller.signal });
        if (res.status === 401) {
          clearTimeout(watchdog);
          let message = '';
          try {
            message = (await res.json()).error.message;
          } catch {
            message = '';
          }
          try {
            await askForToken(message);
            continue;
          } catch {
            this.onStatus('reconnecting');
            await sleep(30000);
            continue;
          }
        }
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        let opened = false;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feed();
          if (!opened) {
            opened = true;
            backoff = 1000;
            this.onStatus('live');
            this.onOpen(this.opens++ > 0);
          }
          buffer += value;
          let cut;
          while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + (buffer[cut] === '\r' ? 4 : 2));
            this.dispatch(block);
          }
        }
      } catch (e) {
        // aborted, network gone, daemon restarting: retry below
      } finally {
        clearTimeout(watchdog);
      }
      if (this.stopped) break;
      this.onStatus('reconnecting');
      await sleep(backoff + Math.random() * 500);
      backoff = Math.min(backoff * 2, 30000);
    }
  }

  dispatch(block) {
    let type = 'message';
    let id = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) {
        if (line.includes('re-read state')) this.onOpen(true);
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
    if (id) this.lastId = id;
    if (!data.length) return;
    let parsed;
    try {
      parsed = JSON.parse(data.join('\n'));
    } catch {
      return;
    }
    this.onEvent(type, parsed);
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
