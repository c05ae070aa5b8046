/* The curator workbench: keyboard-driven decisions on the inbox and the event page.
   Plain JavaScript, no dependencies. Every decision goes to the JSON API with the session's CSRF
   token; what the server answers is shown as text (textContent), never as HTML. */
(() => {
  'use strict';

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const config = JSON.parse(($('#inbox-config') || {}).textContent || '{}');
  const reasons = JSON.parse(($('#reason-keys') || {}).textContent || '[]');
  const statusBox = $('#status');
  const undoButton = $('#undo');
  const UNDO_KEY = 'sinkhole.undo';
  const CURSOR_KEY = 'sinkhole.cursor';

  // --- talking to the API ---------------------------------------------------------------------

  function csrfToken() {
    const field = $('input[name=csrfmiddlewaretoken]');
    if (field) return field.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : '';
  }

  function describe(body, status) {
    const error = body && body.error;
    if (!error) return `The server answered ${status}.`;
    const fields = error.fields || {};
    const parts = Object.keys(fields).map((name) => `${name}: ${fields[name].join(' ')}`);
    return parts.length ? parts.join('; ') : error.message;
  }

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) throw new Error(describe(data, response.status));
    return data;
  }

  function say(text, kind) {
    if (!statusBox) return;
    statusBox.textContent = text;
    statusBox.dataset.kind = kind || '';
    statusBox.classList.toggle('error', kind === 'error');
  }

  // --- undo: a stack of what this tab decided, kept across pages ----------------------------

  function undoStack() {
    try { return JSON.parse(sessionStorage.getItem(UNDO_KEY) || '[]'); } catch (_) { return []; }
  }
  function saveUndo(stack) {
    sessionStorage.setItem(UNDO_KEY, JSON.stringify(stack.slice(-50)));
    if (undoButton) undoButton.disabled = stack.length === 0;
  }
  function remember(entry) { const s = undoStack(); s.push(entry); saveUndo(s); }

  async function undoLast() {
    const stack = undoStack();
    const last = stack.pop();
    if (!last) { say('Nothing to undo.'); return; }
    const url = last.kind === 'batch'
      ? `/api/v1/decisions/batches/${encodeURIComponent(last.id)}/undo`
      : `/api/v1/decisions/${encodeURIComponent(last.id)}/undo`;
    try {
      await api('POST', url);
      saveUndo(stack);
      say(`Undone: ${last.label || 'the last decision'}.`, 'ok');
      reloadSoon();
    } catch (err) {
      saveUndo(stack);  // an undo the server refuses (undone already) leaves the stack
      say(`Undo failed: ${err.message}`, 'error');
    }
  }

  function reloadSoon() { window.setTimeout(() => window.location.reload(), 250); }

  // --- dialogs: reason picker, tag input, help ------------------------------------------------

  let openDialog = null;
  function showDialog(id, onClose) {
    const el = $(id);
    if (!el) return null;
    closeDialog();
    el.hidden = false;
    openDialog = { el, onClose };
    return el;
  }
  function closeDialog(value) {
    if (!openDialog) return;
    const { el, onClose } = openDialog;
    openDialog = null;
    el.hidden = true;
    if (onClose) onClose(value);
  }
  $$('.overlay').forEach((el) => el.addEventListener('click', (e) => { if (e.target === el) closeDialog(); }));

  function pickReason() {
    return new Promise((resolve) => {
      const el = showDialog('#reason-picker', resolve);
      if (!el) resolve(null);
      const first = el && $('button', el);
      if (first) first.focus();
    });
  }
  $$('#reason-picker [data-reason]').forEach((b) => b.addEventListener('click', () => closeDialog(b.dataset.reason)));

  function askTag() {
    return new Promise((resolve) => {
      const el = showDialog('#tag-picker', resolve);
      if (!el) { resolve(null); return; }
      const input = $('#tag-input');
      input.value = '';
      input.focus();
    });
  }
  const tagForm = $('#tag-form');
  if (tagForm) tagForm.addEventListener('submit', (e) => { e.preventDefault(); closeDialog($('#tag-input').value.trim()); });

  function toggleHelp() {
    if (openDialog && openDialog.el.id === 'help') closeDialog(); else showDialog('#help');
  }
  $$('[data-help]').forEach((b) => b.addEventListener('click', toggleHelp));

  // --- deciding ---------------------------------------------------------------------------------

  const reasonLabel = (code) => (reasons.find((r) => r[1] === code) || [null, code, code])[2];

  /** Decide ACTION on EVENT_IDS (or on the whole filtered selection when SCOPE is 'all'). */
  async function decide(action, eventIds, extra, scope) {
    extra = extra || {};
    if (scope === 'all') {
      const count = await selectionCount();
      if (count === null) return null;
      const words = { accept: 'Accept', reject: `Reject (${reasonLabel(extra.reason)})`, tag: `Tag "${extra.tag}"`, untag: `Untag "${extra.tag}"` };
      if (!window.confirm(`${words[action]} all ${count.toLocaleString()} events that match this filter?`)) return null;
      const body = Object.assign({ action, filters: currentFilters(), expect: count }, extra);
      const answer = await api('POST', '/api/v1/decisions/bulk', body);
      remember({ kind: 'batch', id: answer.batch, label: `${action} on ${answer.count} events` });
      return answer;
    }
    if (eventIds.length === 1) {
      const answer = await api('POST', `/api/v1/events/${eventIds[0]}/decisions`, Object.assign({ action }, extra));
      remember({ kind: 'decision', id: answer.id, label: `${action} #${eventIds[0]}` });
      return answer;
    }
    const answer = await api('POST', '/api/v1/decisions/bulk', Object.assign({ action, events: eventIds }, extra));
    remember({ kind: 'batch', id: answer.batch, label: `${action} on ${answer.count} events` });
    return answer;
  }

  async function tagPayload() {
    const raw = await askTag();
    if (!raw) return null;
    return raw.startsWith('-') ? { action: 'untag', tag: raw.slice(1).trim() } : { action: 'tag', tag: raw };
  }

  // --- the inbox --------------------------------------------------------------------------------

  const table = $('#inbox');
  const rows = table ? $$('tr.row', table) : [];
  let current = -1;
  let scopeAll = false;

  function currentFilters() {
    const query = ($('#match-count') || { dataset: {} }).dataset.query || '';
    return Object.fromEntries(new URLSearchParams(query));
  }

  async function selectionCount() {
    const query = new URLSearchParams(currentFilters());
    query.set('cap', String(config.bulkMax || 5000));
    const answer = await api('GET', `/api/v1/inbox/count?${query}`);
    if (!answer.exact) {
      say(`More than ${Number(config.bulkMax).toLocaleString()} events match: narrow the filter for a bulk decision.`, 'error');
      return null;
    }
    return answer.count;
  }

  function setCurrent(index, scroll) {
    if (!rows.length) return;
    index = Math.max(0, Math.min(rows.length - 1, index));
    if (current >= 0 && rows[current]) rows[current].classList.remove('current');
    current = index;
    const row = rows[current];
    row.classList.add('current');
    sessionStorage.setItem(CURSOR_KEY, row.dataset.id);
    if (scroll !== false) row.scrollIntoView({ block: 'nearest' });
  }

  const picks = () => rows.filter((r) => { const box = $('.pick', r); return box && box.checked; });
  function refreshPicks() {
    rows.forEach((r) => { const box = $('.pick', r); r.classList.toggle('picked', !!(box && box.checked)); });
    const counter = $('#selected-count');
    if (counter) counter.textContent = scopeAll ? 'all matching' : String(picks().length);
    const whole = $('#whole-selection');
    if (whole) whole.classList.toggle('primary', scopeAll);
  }
  function togglePick(row) { const box = $('.pick', row); if (box) { box.checked = !box.checked; scopeAll = false; refreshPicks(); } }

  function targets() {
    const picked = picks();
    if (picked.length) return picked;
    return current >= 0 && rows[current] ? [rows[current]] : [];
  }

  function markRows(targetRows, action, extra) {
    targetRows.forEach((row) => {
      if (action === 'accept' || action === 'reject') {
        const cell = $('.judgement', row);
        cell.textContent = '';
        const badge = document.createElement('span');
        badge.className = `badge ${action}ed`;
        badge.textContent = `${action}ed`;
        cell.appendChild(badge);
        const verdict = $('.verdict', row);
        verdict.textContent = '';
        const vb = document.createElement('span');
        vb.className = `badge ${action}ed`;
        vb.textContent = `${action}ed`;
        verdict.appendChild(vb);
      } else if (action === 'tag' || action === 'untag') {
        const cell = $('.tags', row);
        $$('.tag.curator', cell).forEach((t) => { if (t.textContent === extra.tag.toLowerCase()) t.remove(); });
        if (action === 'tag') {
          const t = document.createElement('span');
          t.className = 'tag curator';
          t.textContent = extra.tag.toLowerCase();
          cell.prepend(t);
        }
      }
      row.classList.remove('flash'); void row.offsetWidth; row.classList.add('flash');
    });
  }

  async function inboxDecide(action, extra) {
    if (!config.canDecide) { say('Your role can read but not decide.', 'error'); return; }
    const targetRows = scopeAll ? [] : targets();
    if (!scopeAll && !targetRows.length) { say('No event here.'); return; }
    try {
      const answer = await decide(action, targetRows.map((r) => Number(r.dataset.id)), extra, scopeAll ? 'all' : 'rows');
      if (!answer) return;
      if (scopeAll) { say(`${action} on ${answer.count} events done.`, 'ok'); reloadSoon(); return; }
      markRows(targetRows, action, extra);
      const many = targetRows.length > 1;
      say(`${action}${extra && extra.reason ? ` (${reasonLabel(extra.reason)})` : ''}${extra && extra.tag ? ` "${extra.tag}"` : ''} — ${many ? `${targetRows.length} events` : `#${targetRows[0].dataset.id}`}. u undoes.`, 'ok');
      if (many) { rows.forEach((r) => { const b = $('.pick', r); if (b) b.checked = false; }); refreshPicks(); }
      else if (action === 'accept' || action === 'reject') setCurrent(current + 1);
    } catch (err) {
      say(err.message, 'error');
    }
  }

  async function inboxReject() {
    const reason = await pickReason();
    if (reason) await inboxDecide('reject', { reason });
  }
  async function inboxTag() {
    const payload = await tagPayload();
    if (payload) await inboxDecide(payload.action, { tag: payload.tag });
  }

  function openRow(hash) {
    const row = rows[current];
    if (row) window.location.href = row.dataset.href + (hash || '');
  }

  if (table) {
    rows.forEach((row, index) => {
      row.addEventListener('click', (e) => {
        if (e.target.closest('a, input, button')) return;
        setCurrent(index, false);
      });
      row.addEventListener('dblclick', (e) => { if (!e.target.closest('a, input, button')) { setCurrent(index, false); openRow(); } });
      const box = $('.pick', row);
      if (box) box.addEventListener('change', () => { scopeAll = false; refreshPicks(); });
    });
    const all = $('#check-all');
    if (all) all.addEventListener('change', () => { rows.forEach((r) => { const b = $('.pick', r); if (b) b.checked = all.checked; }); scopeAll = false; refreshPicks(); });
    const selectPage = $('#select-page');
    if (selectPage) selectPage.addEventListener('click', () => { rows.forEach((r) => { const b = $('.pick', r); if (b) b.checked = true; }); scopeAll = false; refreshPicks(); });
    const whole = $('#whole-selection');
    if (whole) whole.addEventListener('click', () => {
      scopeAll = !scopeAll;
      if (scopeAll) rows.forEach((r) => { const b = $('.pick', r); if (b) b.checked = false; });
      refreshPicks();
      say(scopeAll ? 'Next decision applies to every event matching the filter (asks first). Click again to cancel.' : '');
    });
    $$('[data-bulk]').forEach((b) => b.addEventListener('click', () => {
      const act = b.dataset.bulk;
      if (act === 'accept') inboxDecide('accept');
      else if (act === 'reject') inboxReject();
      else inboxTag();
    }));
    const remembered = sessionStorage.getItem(CURSOR_KEY);
    const start = rows.findIndex((r) => r.dataset.id === remembered);
    if (rows.length) setCurrent(start >= 0 ? start : 0, start >= 0);
    refreshPicks();

    const counter = $('#match-count');
    if (counter && counter.textContent.trim() === '…') {
      api('GET', `/api/v1/inbox/count?${counter.dataset.query || ''}`)
        .then((a) => { counter.textContent = `${a.label} ${a.count === 1 && a.exact ? 'event' : 'events'}`; })
        .catch(() => { counter.textContent = ''; });
    }
  }

  // --- the event page ---------------------------------------------------------------------------

  const eventBox = $('#event');
  const eventId = eventBox ? Number(eventBox.dataset.id) : null;

  async function eventDecide(action, extra) {
    if (!config.canDecide) { say('Your role can read but not decide.', 'error'); return; }
    try {
      await decide(action, [eventId], extra, 'rows');
      say(`${action} saved.`, 'ok');
      reloadSoon();
    } catch (err) { say(err.message, 'error'); }
  }
  async function eventReject() { const reason = await pickReason(); if (reason) await eventDecide('reject', { reason }); }
  async function eventTag() { const p = await tagPayload(); if (p) await eventDecide(p.action, { tag: p.tag }); }

  if (eventBox) {
    $$('[data-act]').forEach((b) => b.addEventListener('click', () => {
      const act = b.dataset.act;
      if (act === 'accept') eventDecide('accept');
      else if (act === 'reject') eventReject();
      else eventTag();
    }));
    $$('[data-undo]').forEach((b) => b.addEventListener('click', async () => {
      try {
        await api('POST', `/api/v1/decisions/${encodeURIComponent(b.dataset.undo)}/undo`);
        saveUndo(undoStack().filter((e) => !(e.kind === 'decision' && String(e.id) === b.dataset.undo)));
        say('Undone.', 'ok');
        reloadSoon();
      } catch (err) { say(err.message, 'error'); }
    }));
    const goldForm = $('#gold-form');
    if (goldForm) {
      goldForm.addEventListener('submit', async (e) => {
        e.preventDefault();
        const data = new FormData(goldForm);
        try {
          const answer = await api('POST', `/api/v1/events/${eventId}/decisions`, {
            action: 'gold', text: String(data.get('text') || ''), position: Number(data.get('position') || 0),
          });
          remember({ kind: 'decision', id: answer.id, label: `gold on #${eventId}` });
          say('Gold reply saved.', 'ok');
          reloadSoon();
        } catch (err) { say(err.message, 'error'); }
      });
      $('#gold-text').addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); goldForm.requestSubmit(); }
      });
      if (window.location.hash === '#gold') {
        // after the browser's own scroll to the fragment, which would take focus back
        const focusGold = () => window.setTimeout(() => { const t = $('#gold-text'); t.focus(); t.setSelectionRange(t.value.length, t.value.length); }, 0);
        if (document.readyState === 'complete') focusGold(); else window.addEventListener('load', focusGold);
      }
    }
  }

  if (undoButton) {
    undoButton.disabled = undoStack().length === 0;
    undoButton.addEventListener('click', undoLast);
  }

  // --- the keyboard -----------------------------------------------------------------------------

  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (openDialog) {
      if (e.key === 'Escape') { e.preventDefault(); closeDialog(null); return; }
      if (openDialog.el.id === 'reason-picker') {
        const pick = reasons.find((r) => r[0] === e.key);
        if (pick) { e.preventDefault(); closeDialog(pick[1]); }
      } else if (openDialog.el.id === 'help' && e.key === '?') { e.preventDefault(); closeDialog(); }
      return;
    }
    const typing = e.target.closest && e.target.closest('input, textarea, select, [contenteditable]');
    if (typing) {
      if (e.key === 'Escape') e.target.blur();
      return;
    }
    const key = e.key;
    const handled = () => e.preventDefault();
    if (key === '?') { handled(); toggleHelp(); return; }
    if (key === '/') { const search = $('.filters .search'); if (search) { handled(); search.focus(); search.select(); } return; }
    if (key === 'u') { handled(); undoLast(); return; }
    if (table) {
      if (key === 'j' || key === 'ArrowDown') { handled(); setCurrent(current + 1); }
      else if (key === 'k' || key === 'ArrowUp') { handled(); setCurrent(current - 1); }
      else if (key === 'x') { handled(); if (rows[current]) togglePick(rows[current]); }
      else if (key === 'a') { handled(); inboxDecide('accept'); }
      else if (key === 'r') { handled(); inboxReject(); }
      else if (key === 't') { handled(); inboxTag(); }
      else if (key === 'e') { handled(); openRow('#gold'); }
      else if (key === 'Enter') { handled(); openRow(); }
      else if (key === 'n') { const older = $('#older'); if (older) { handled(); older.click(); } }
    } else if (eventBox) {
      if (key === 'a') { handled(); eventDecide('accept'); }
      else if (key === 'r') { handled(); eventReject(); }
      else if (key === 't') { handled(); eventTag(); }
      else if (key === 'e') { const gold = $('#gold-text'); if (gold) { handled(); gold.focus(); } }
      else if (key === 'j') { const next = $('#next-event'); if (next) { handled(); next.click(); } }
      else if (key === 'k') { const prev = $('#prev-event'); if (prev) { handled(); prev.click(); } }
    }
  });
})();
