// Save and Mark wrong show their result at once: the step's row reads "done", or a new wrong-action row is the one
// edited. The row is marked data-pending until the server's answer (the canvas value echoing the click's token)
// redraws the panels from the store; a refused edit thus comes back as stored, with its sentence in the notice.
// Run once at page load by ui/authoring.py's JS; its TOKEN_JS hands a button's token to the event.
() => {
  const CANVAS = '#auth-screenshot .zc';
  const PATIENCE_MS = 15000;  // no answer by then: show the stored state again, drop held clicks, say so
  const LATE = 'The server has not answered yet: the state shown is the stored one. Check your connection, then try again.';
  const waiting = new Map();  // button id -> {token, show, holds, timer}; gradio runs one event per button at a time
  window.authoringTokens = {};
  let count = 0;

  const canvas = () => (document.querySelector(CANVAS) || {}).zoomCanvas;
  const forget = (node) => { const place = node && node.closest('[data-zc-panel]'); if (place) place.zcHtml = null; };
  const mark = () => { document.body.dataset.authPending = [...waiting.values()].map(w => w.token).join(' '); };

  function showSaved() {
    const row = document.querySelector('#auth-states tr.auth-here');
    if (!row) return;
    row.dataset.status = 'done';
    row.dataset.pending = '1';
    const cell = row.querySelector('td[data-field="status"]');
    if (cell) cell.textContent = 'done';
    forget(row);
  }

  function showWrong() {
    const here = document.querySelector('#auth-states tr.auth-here');
    const editing = document.querySelector('[data-zc-panel="auth-header"] [data-field="editing"]');
    if (!here || !editing) return;
    editing.textContent = 'wrong action';
    const step = here.dataset.step, rows = document.querySelectorAll(`#auth-states tr[data-step="${step}"]`);
    const row = document.createElement('tr');
    Object.assign(row.dataset, {step, part: 'wrong action', correction: '', status: 'draft', pending: '1'});
    for (const text of [step, 'wrong action (new)', '…', 'draft']) {
      row.appendChild(document.createElement('td')).textContent = text;
    }
    row.lastChild.dataset.field = 'status';
    here.classList.remove('auth-here');
    row.classList.add('auth-here');
    rows[rows.length - 1].after(row);
    forget(row); forget(editing);
  }

  const SHOW = {'auth-save': showSaved, 'auth-wrong': showWrong};

  function done(id, answered) {
    const item = waiting.get(id);
    if (!item) return;
    waiting.delete(id);
    clearTimeout(item.timer);
    // clicks made on the screenshot meanwhile place the new wrong action: sent now, naming it
    if (item.holds && canvas()) canvas().release(answered);
    mark();
  }

  function late(id) {
    done(id, false);
    const notice = document.querySelector('[data-zc-panel="auth-notice"]');
    if (notice) {
      notice.innerHTML = '<ul><li class="auth-warning"></li></ul>';
      notice.querySelector('li').textContent = LATE;
      notice.zcHtml = null;
    }
    for (const place of document.querySelectorAll('[data-zc-panel="auth-states"], [data-zc-panel="auth-header"]')) {
      place.zcHtml = null;
    }
    if (canvas()) canvas().redrawPanels();
    for (const item of waiting.values()) item.show();
  }

  document.addEventListener('click', (event) => {
    const button = event.target.closest && event.target.closest('#auth-save, #auth-wrong');
    if (!button || button.disabled || waiting.has(button.id)) return;  // gradio skips a click while one runs
    const root = document.querySelector(CANVAS);
    count += 1;
    const token = `${button.id}-${Date.now()}-${count}`;
    window.authoringTokens[button.id] = token;
    if (!root || root.dataset.locked === '1') return;  // a locked trajectory refuses edits: nothing to show ahead
    const item = {token, show: SHOW[button.id], holds: button.id === 'auth-wrong' && !!root.zoomCanvas};
    waiting.set(button.id, item);
    mark();
    item.show();
    if (item.holds) root.zoomCanvas.hold('wrong');
    item.timer = setTimeout(() => late(button.id), PATIENCE_MS);
  }, true);

  // each canvas value has redrawn the panels from the store: its answer settles that click, and what is still
  // waiting is shown again on top
  document.addEventListener('zc-update', (event) => {
    const data = event.detail || {};
    if (data.name !== 'auth' || !waiting.size) return;
    for (const [id, item] of waiting) if (data.answered === item.token) done(id, true);
    for (const item of waiting.values()) item.show();
  });
}
