/*! Sinkhole feedback widget | Apache-2.0 | frontend/widget/README.md */
// One <script> tag adds <sinkhole-rating> (thumbs, reason chips, comment) and <sinkhole-compare>
// (A, B, tie, both bad) to any page, plus window.Sinkhole (attach, compare, configure, flush).
//
// Every event gets its id here, in the browser, and is written to a localStorage outbox before
// it is sent; the outbox is retried with exponential backoff and flushed on page load and on
// `online`. Ingest is idempotent, so a retry of a delivered event is harmless.
//
// The host page is not trusted to keep the built-ins intact: everything the widget calls later
// (fetch, JSON, storage, DOM methods) is captured when this file runs, and the widget's own code
// uses no Array.prototype method, no array iteration protocol and no innerHTML. Styles live in
// a shadow root; the host element's own box is defended with !important :host rules, which win
// over the page's !important rules.
(() => {
  'use strict';
  const W = window, D = document;
  if (W.customElements.get('sinkhole-rating')) return; // loaded twice

  // --- built-ins, captured before anyone can replace them -------------------------------
  const apply = Reflect.apply, O = Object, keys = O.keys, isArray = Array.isArray;
  const hasOwn = O.prototype.hasOwnProperty, create = O.create;
  const own = (o, k) => (o != null && apply(hasOwn, o, [k]) ? o[k] : undefined);
  const parse = JSON.parse, stringify = JSON.stringify;
  const fetchF = W.fetch, setT = W.setTimeout, clearT = W.clearTimeout, now = Date.now;
  const warn = console.warn, rand = Math.random, min = Math.min;
  const EP = EventTarget.prototype, NP = Node.prototype, EL = Element.prototype;
  const listen = EP.addEventListener, dispatch = EP.dispatchEvent, appendC = NP.appendChild;
  const setAttr = EL.setAttribute, getAttr = EL.getAttribute, shadow = EL.attachShadow;
  const textSet = O.getOwnPropertyDescriptor(NP, 'textContent').set;
  const makeEl = D.createElement, makeNS = D.createElementNS, focusF = HTMLElement.prototype.focus;
  const resText = Response.prototype.text, headerGet = Headers.prototype.get;
  const CE = CustomEvent, C = W.crypto, randomUUID = C.randomUUID, randomFill = C.getRandomValues;
  let store = null, getItem, setItem;
  try {
    store = W.localStorage;
    getItem = store.getItem;
    setItem = store.setItem;
  } catch (e) {
    store = null; // storage blocked (sandboxed frame, privacy mode): keep the outbox in memory
  }

  const on = (target, type, fn) => apply(listen, target, [type, fn]);
  const attr = (el, name, value) => apply(setAttr, el, [name, '' + value]);
  const text = (el, value) => apply(textSet, el, [value]);
  const add = (parent, child) => apply(appendC, parent, [child]);
  const push = (list, item) => { list[list.length] = item; };
  // A new element with attributes and text (always textContent: host data is never markup).
  const h = (parent, tag, attrs, content) => {
    const el = apply(makeEl, D, [tag]), names = keys(attrs || {});
    for (let i = 0; i < names.length; i++) attr(el, names[i], attrs[names[i]]);
    if (content != null) text(el, content);
    return add(parent, el);
  };

  const uuid = () => {
    if (randomUUID) return apply(randomUUID, C, []);
    // Not a secure context (plain http on a LAN address): build a version-4 UUID by hand.
    const b = apply(randomFill, C, [new Uint8Array(16)]);
    let s = '';
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    for (let i = 0; i < 16; i++) s += (i > 3 && i < 11 && !(i & 1) ? '-' : '') + (b[i] + 256).toString(16).slice(1);
    return s;
  };

  // JSON without JSON.stringify's toJSON hooks, which a page can plant on Array.prototype.
  const ser = (v) => {
    if (v === null || typeof v != 'object') return apply(stringify, JSON, [v]) || 'null';
    let out = '';
    if (isArray(v)) {
      for (let i = 0; i < v.length; i++) out += (i ? ',' : '') + ser(v[i]);
      return '[' + out + ']';
    }
    const names = keys(v);
    for (let i = 0; i < names.length; i++) {
      const item = v[names[i]];
      if (item !== undefined && typeof item != 'function') {
        out += (out ? ',' : '') + apply(stringify, JSON, [names[i]]) + ':' + ser(item);
      }
    }
    return '{' + out + '}';
  };

  // --- configuration: the <script> tag's data-* attributes, or Sinkhole.configure() -------
  const script = D.currentScript, data = (script && script.dataset) || {};
  const cfg = {
    key: data.key,
    endpoint: data.endpoint || (script && script.src ? new URL(script.src).origin : location.origin),
    rater: data.rater,
    reasons: data.reasons,
    reasonsUp: data.reasonsUp,
    theme: data.theme || 'light',
    hold: +data.hold || 30000,
  };
  // Reason chips: "code" or "code=Label", comma-separated (or a list of such strings).
  const REASONS_DOWN =
    "not_factually_correct=Not factually correct,didnt_follow_instructions=Didn't follow instructions," +
    'not_helpful=Not helpful,too_verbose=Too verbose,refused=Refused for no reason,harmful=Harmful or offensive,other=Other';
  const REASONS_UP =
    'accurate=Accurate,followed_instructions=Followed instructions,helpful=Helpful,well_written=Clear and well written,other=Other';
  const T = {
    rate: 'Rate this response',
    up: 'Good response',
    down: 'Bad response',
    whyUp: 'What was good?',
    whyDown: 'What went wrong?',
    comment: 'Add a comment (optional)',
    send: 'Send',
    close: 'Close and send',
    thanks: 'Thanks for your feedback',
    which: 'Which response is better?',
    a: 'A is better',
    b: 'B is better',
    tie: "It's a tie",
    bad: 'Both are bad',
  };

  const reasonList = (spec) => {
    const out = [], parts = typeof spec == 'string' ? spec.split(',') : spec || [];
    for (let i = 0; i < parts.length; i++) {
      const s = ('' + parts[i]).trim(), cut = s.indexOf('=');
      const code = (cut < 0 ? s : s.slice(0, cut)).trim();
      if (code) push(out, [code, cut < 0 ? code.charAt(0).toUpperCase() + code.slice(1).replace(/_/g, ' ') : s.slice(cut + 1).trim()]);
    }
    return out;
  };

  // --- the outbox -------------------------------------------------------------------------
  // A list of {e: event, n: failed attempts, t: not before (ms)} in localStorage, one per
  // endpoint and key. Open drafts (a thumb clicked, details not yet sent) sit in it too, held
  // until they are sent, so that even a crash loses nothing.
  let memory = null, busy = null, again = false, timer = 0, hiding = false;
  const drafts = create(null); // event id -> the element holding that open draft
  const box = () => 'sinkhole:outbox:' + cfg.endpoint + ':' + cfg.key;
  const load = () => {
    let v = memory;
    if (!v && store) {
      try {
        v = parse(apply(getItem, store, [box()]));
      } catch (e) {
        v = null;
      }
    }
    const out = [];
    if (isArray(v)) for (let i = 0; i < v.length; i++) if (v[i] && v[i].e && v[i].e.id) push(out, v[i]);
    return out;
  };
  const save = (list) => {
    if (store && !memory) {
      try {
        return apply(setItem, store, [box(), ser(list)]);
      } catch (e) {
        // quota or a blocked store: from now on this page keeps the outbox in memory
      }
    }
    memory = list;
  };
  // Replace or drop entries by event id (changes: id -> entry, or null to drop); add new ones.
  const update = (changes) => {
    const list = load(), out = [], seen = create(null);
    for (let i = 0; i < list.length; i++) {
      const id = list[i].e.id, change = own(changes, id);
      seen[id] = 1;
      if (change !== null) push(out, change || list[i]);
    }
    const ids = keys(changes);
    for (let i = 0; i < ids.length; i++) if (!seen[ids[i]] && changes[ids[i]]) push(out, changes[ids[i]]);
    save(out);
  };
  // 1 s, 2 s, 4 s … up to 5 minutes, with jitter so that many pages do not retry in step.
  const backoff = (n) => min(3e5, 1e3 * 2 ** n) * (0.5 + rand() / 2);
  // Wake up when the next entry that is not an open draft of this page falls due.
  const arm = () => {
    const list = load();
    let next = Infinity;
    for (let i = 0; i < list.length; i++) if (!drafts[list[i].e.id] && list[i].t < next) next = list[i].t;
    apply(clearT, W, [timer]);
    if (next < Infinity) timer = apply(setT, W, [flush, min(2e9, Math.max(0, next - now()) + 50)]);
  };

  // What failed before is due now: on page load, on `online`, on Sinkhole.flush(). Drafts,
  // never attempted yet, keep their hold.
  const retryNow = () => {
    const list = load(), changes = create(null);
    for (let i = 0; i < list.length; i++) if (list[i].n) changes[list[i].e.id] = { e: list[i].e, n: list[i].n, t: 0 };
    update(changes);
    return flush();
  };

  const sendDue = async () => {
    for (;;) {
      const list = load(), t = now(), due = [], changes = create(null);
      let retry = false;
      for (let i = 0; i < list.length && due.length < 100; i++) {
        if (!drafts[list[i].e.id] && list[i].t <= t) push(due, list[i]);
      }
      if (!due.length) return arm();
      if (!cfg.key) return apply(warn, console, ['Sinkhole: no publishable key; set data-key on the script tag']);
      const events = [];
      for (let i = 0; i < due.length; i++) push(events, due[i].e);
      let status = 0, results = null, wait = 0;
      try {
        const res = await apply(fetchF, W, [
          cfg.endpoint + '/api/v1/feedback',
          {
            method: 'POST',
            headers: { Authorization: 'Bearer ' + cfg.key, 'Content-Type': 'application/json' },
            body: ser(events),
            credentials: 'omit',
            keepalive: hiding,
          },
        ]);
        status = res.status;
        wait = +apply(headerGet, res.headers, ['Retry-After']) * 1e3 || 0;
        if (status == 207) results = parse(await apply(resText, res, [])).results;
      } catch (e) {
        // offline, connection refused, CORS refused, an unreadable answer: all worth a retry
      }
      for (let i = 0; i < due.length; i++) {
        const entry = due[i], r = results && results[i];
        if (status == 207 ? !r || own(r, 'code') == 'rate_limited' : !status || status == 429 || status >= 500) {
          retry = true;
          changes[entry.e.id] = { e: entry.e, n: entry.n + 1, t: t + (wait || backoff(entry.n)) };
        } else {
          if (status == 207 ? own(r, 'status') == 'error' : status >= 300) {
            apply(warn, console, ['Sinkhole: event ' + entry.e.id + ' refused (' + status + '), dropped', r || '']);
          }
          changes[entry.e.id] = null;
        }
      }
      update(changes);
      if (retry) return arm();
    }
  };
  // One sender at a time; a flush asked for while one runs makes it go round once more.
  const flush = async () => {
    if (busy) {
      again = true;
      return busy;
    }
    busy = (async () => {
      do {
        again = false;
        try {
          await sendDue();
        } catch (e) {
          apply(warn, console, ['Sinkhole:', e]); // never an unhandled rejection on the host page
        }
      } while (again);
    })();
    try {
      await busy;
    } finally {
      busy = null;
    }
  };

  // --- the elements -----------------------------------------------------------------------
  // The widget's look. Theme it from the page with the --sinkhole-* custom properties, which
  // cross the shadow boundary; nothing else from the page reaches in.
  const CSS = `
:host {
  all: initial !important;
  display: block !important;
  visibility: visible !important;
  opacity: 1 !important;
  pointer-events: auto !important;
  --f: var(--sinkhole-fg, #1d2330);
  --b: var(--sinkhole-bg, #fff);
  --m: var(--sinkhole-muted, #667085);
  --l: var(--sinkhole-border, #d0d5dd);
  --a: var(--sinkhole-accent, #3b5bdb);
  --r: var(--sinkhole-radius, 8px);
  /* all: initial is !important, so what follows must be too */
  margin: 4px 0 !important;
  color: var(--f) !important;
  font: 13px/1.4 var(--sinkhole-font, system-ui, sans-serif) !important;
}
:host([theme=dark]) {
  --f: var(--sinkhole-fg, #e6e8ee);
  --b: var(--sinkhole-bg, #1f2430);
  --m: var(--sinkhole-muted, #98a2b3);
  --l: var(--sinkhole-border, #3a4150);
  --a: var(--sinkhole-accent, #8ea6ff);
}
:host([hidden]), [hidden] { display: none !important; }
* { box-sizing: border-box; margin: 0; font: inherit; color: inherit; }
.row { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.q { font-weight: 600; margin-bottom: 4px; }
.st { color: var(--m); outline: none; }
.p { display: grid; gap: 8px; max-width: 36em; margin-top: 6px; padding: 8px; border: 1px solid var(--l); border-radius: var(--r); background: var(--b); }
button, textarea { border: 1px solid var(--l); border-radius: var(--r); background: var(--b); }
button { min-height: 28px; padding: 3px 10px; cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--a); }
button:focus-visible, textarea:focus-visible { outline: 2px solid var(--a); outline-offset: 2px; }
button[aria-pressed=true] { background: var(--a); border-color: var(--a); color: var(--b); }
button:disabled { cursor: default; opacity: .55; }
button[aria-pressed=true]:disabled { opacity: 1; }
.t { display: inline-flex; padding: 5px 7px; }
.c { border-radius: 99px; font-size: 12px; }
.go { background: var(--a); border-color: var(--a); color: var(--b); }
svg { width: 16px; height: 16px; fill: currentColor; }
.dn svg { transform: scaleY(-1); }
textarea { width: 100%; padding: 5px 7px; resize: vertical; }
`;
  const THUMB = 'M2 10h4v11H2zM8 10l4-8c1.7 0 3 1.3 3 3v3h5a2 2 0 0 1 2 2.3l-1.4 8.2A2 2 0 0 1 18.6 21H8z';

  class Base extends HTMLElement {
    // An option: from .options (Sinkhole.attach), else the element's attribute, else the script tag.
    opt(name) {
      let v = own(this.options, name);
      if (v == null) v = apply(getAttr, this, [name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())]);
      if (v == null) v = own(cfg, name);
      return v == null ? undefined : v;
    }
    connectedCallback() {
      if (this.s) return;
      const theme = this.opt('theme');
      attr(this, 'theme', theme == 'auto' ? (W.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light') : theme);
      this.s = apply(shadow, this, [{ mode: 'open' }]);
      h(this.s, 'style', null, CSS);
      this.box = h(this.s, 'div', { class: 'w', role: 'group' });
      this.build();
    }
    event(type) {
      const prompt = this.opt('prompt'), meta = this.opt('metadata') || {}, copy = { widget: 'sinkhole-widget/1' };
      const names = keys(meta);
      for (let i = 0; i < names.length; i++) copy[names[i]] = meta[names[i]];
      return {
        type,
        id: this.opt('eventId') || uuid(),
        rater: this.opt('rater'),
        model: this.opt('model'),
        checkpoint: this.opt('checkpoint'),
        messages: this.opt('messages') || (prompt != null ? [{ role: 'user', content: prompt }] : undefined),
        tags: this.opt('tags'),
        metadata: copy,
        timestamp: new Date().toISOString(),
        response: this.opt('response'),
        rating: undefined,
        reason: undefined,
        comment: undefined,
        responses: undefined,
        choice: undefined,
      };
    }
    // Hand the event to the outbox (and tell the host page), then send what is due.
    commit(ev) {
      delete drafts[ev.id];
      update({ [ev.id]: { e: ev, n: 0, t: 0 } });
      apply(dispatch, this, [new CE('sinkhole-feedback', { detail: ev, bubbles: true, composed: true })]);
      flush();
    }
    done(summary, buttons) {
      const focused = this.s.activeElement; // never steal focus from the rest of the page
      for (let i = 0; i < buttons.length; i++) buttons[i].disabled = true;
      text(this.status, summary);
      if (focused) apply(focusF, this.status, []);
    }
    disconnectedCallback() {
      // A chat UI that re-renders may move the element: send its draft only if it stays gone.
      apply(setT, W, [() => this.isConnected || this.finish(), 0]);
    }
    finish() {}
  }

  class Rating extends Base {
    build() {
      const box = this.box, row = h(box, 'div', { class: 'row' });
      attr(box, 'aria-label', T.rate);
      const thumb = (value, label) => {
        const b = h(row, 'button', { type: 'button', class: value > 0 ? 't' : 't dn', 'aria-label': label, title: label, 'aria-pressed': false });
        const svg = add(b, apply(makeNS, D, ['http://www.w3.org/2000/svg', 'svg']));
        attr(svg, 'viewBox', '0 0 24 24');
        attr(svg, 'aria-hidden', true);
        attr(add(svg, apply(makeNS, D, ['http://www.w3.org/2000/svg', 'path'])), 'd', THUMB);
        on(b, 'click', () => this.thumb(value));
        return b;
      };
      this.up = thumb(1, T.up);
      this.down = thumb(-1, T.down);
      this.status = h(row, 'span', { class: 'st', role: 'status', tabindex: -1 });
      const panel = (this.panel = h(box, 'div', { class: 'p', hidden: '' }));
      this.question = h(panel, 'div', { class: 'q', id: 'q' });
      this.chips = h(panel, 'div', { class: 'row', role: 'group', 'aria-labelledby': 'q' });
      const area = (this.area = h(panel, 'textarea', { 'aria-label': T.comment, placeholder: T.comment, maxlength: 10000, rows: 2 }));
      on(area, 'input', () => {
        this.draft.comment = area.value.trim() || undefined;
        this.touch();
      });
      const act = h(panel, 'div', { class: 'row' });
      on(h(act, 'button', { type: 'button', class: 'go' }, T.send), 'click', () => this.finish());
      on(h(act, 'button', { type: 'button', class: 'x', 'aria-label': T.close, title: T.close }, '\u00d7'), 'click', () => this.finish());
      on(panel, 'keydown', (e) => e.key == 'Escape' && this.finish());
    }
    thumb(value) {
      const d = this.draft || (this.draft = this.event('rating'));
      if (d.rating != value) {
        d.rating = value;
        d.reason = this.label = undefined;
        attr(this.up, 'aria-pressed', value > 0);
        attr(this.down, 'aria-pressed', value < 0);
        text(this.question, value > 0 ? T.whyUp : T.whyDown);
        text(this.chips, '');
        const list = reasonList(this.opt(value > 0 ? 'reasonsUp' : 'reasons') || (value > 0 ? REASONS_UP : REASONS_DOWN));
        const chips = [];
        for (let i = 0; i < list.length; i++) {
          const chip = h(this.chips, 'button', { type: 'button', class: 'c', 'aria-pressed': false }, list[i][1]);
          push(chips, chip);
          on(chip, 'click', () => {
            d.reason = d.reason == list[i][0] ? undefined : list[i][0];
            this.label = d.reason && list[i][1];
            for (let j = 0; j < chips.length; j++) attr(chips[j], 'aria-pressed', chips[j] == chip && !!d.reason);
            this.touch();
          });
        }
      }
      drafts[d.id] = this;
      this.panel.hidden = false;
      this.touch();
    }
    // Keep the draft in the outbox (held while the page lives) and restart the idle timer:
    // a draft left alone for `hold` ms is sent as it stands, unless the comment box has focus.
    touch() {
      const d = this.draft, hold = +this.opt('hold');
      update({ [d.id]: { e: this.draft, n: 0, t: now() + 2 * hold } });
      apply(clearT, W, [this.idle]);
      this.idle = apply(setT, W, [() => (this.s.activeElement == this.area ? this.touch() : this.finish()), hold]);
    }
    finish() {
      const d = this.draft;
      if (!d || this.sent) return;
      this.sent = true;
      apply(clearT, W, [this.idle]);
      this.panel.hidden = true;
      this.commit(this.draft);
      const c = d.comment;
      this.done(T.thanks + (this.label ? ' \u00b7 ' + this.label : '') + (c ? ' \u00b7 \u201c' + (c.length > 80 ? c.slice(0, 79) + '\u2026' : c) + '\u201d' : ''), [this.up, this.down]);
    }
  }

  class Compare extends Base {
    build() {
      const box = this.box;
      h(box, 'div', { class: 'q', id: 'q' }, T.which);
      const row = h(box, 'div', { class: 'row' });
      attr(box, 'aria-labelledby', 'q');
      const choices = [0, 1, 'tie', 'both_bad'], names = [T.a, T.b, T.tie, T.bad], buttons = [];
      for (let i = 0; i < 4; i++) {
        const b = h(row, 'button', { type: 'button', class: 'c', 'aria-pressed': false }, names[i]);
        push(buttons, b);
        on(b, 'click', () => {
          if (this.sent) return;
          this.sent = true;
          const ev = this.event('preference'), given = this.opt('responses'), responses = [];
          ev.response = undefined;
          for (let j = 0; j < 2; j++) {
            let r = given && given[j];
            if (typeof r == 'string') r = { content: r };
            push(responses, {
              content: own(r, 'content') ?? this.opt(j ? 'responseB' : 'responseA'),
              model: own(r, 'model') ?? this.opt(j ? 'modelB' : 'modelA'),
              checkpoint: own(r, 'checkpoint'),
            });
          }
          ev.responses = responses;
          ev.choice = choices[i];
          attr(b, 'aria-pressed', true);
          this.commit(ev);
          this.done(T.thanks + ' \u00b7 ' + names[i], buttons);
        });
      }
      this.status = h(box, 'div', { class: 'st', role: 'status', tabindex: -1 });
    }
  }

  W.customElements.define('sinkhole-rating', Rating);
  W.customElements.define('sinkhole-compare', Compare);

  const make = (tag, parent, options) => {
    const el = apply(makeEl, D, [tag]);
    el.options = options || {};
    return add(parent, el);
  };
  W.Sinkhole = {
    version: '1.0.0',
    // Rating controls (thumbs, reasons, comment) for one assistant reply, appended to parent.
    attach: (parent, options) => make('sinkhole-rating', parent, options),
    // An A/B chooser for two replies to the same conversation, appended to parent.
    compare: (parent, options) => make('sinkhole-compare', parent, options),
    // Change settings after load: key, endpoint, rater, reasons, reasonsUp, theme, hold, text.
    configure(options) {
      const names = keys(options || {});
      for (let i = 0; i < names.length; i++) {
        const k = names[i], v = options[k];
        if (k == 'text') {
          const t = keys(v);
          for (let j = 0; j < t.length; j++) if (apply(hasOwn, T, [t[j]])) T[t[j]] = v[t[j]];
        } else if (apply(hasOwn, cfg, [k])) cfg[k] = v;
      }
      return flush();
    },
    // Send what waits now, without waiting out the backoff; resolves when that try is over.
    flush: retryNow,
    // How many events wait in the outbox (open drafts included).
    pending: () => load().length,
  };

  on(W, 'online', retryNow);
  on(W, 'pagehide', () => {
    // The page is going away: its open drafts are as final as they will get.
    hiding = true;
    const open = keys(drafts);
    for (let i = 0; i < open.length; i++) drafts[open[i]].finish();
    flush();
  });
  on(W, 'pageshow', () => {
    hiding = false;
  });
  apply(dispatch, D, [new CE('sinkhole:ready')]);
  retryNow(); // a page load is a fresh chance for whatever an earlier page could not send
})();
