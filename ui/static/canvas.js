// A screenshot that zooms (wheel, + - 0 1, buttons), pans (drag; Alt-drag or middle button in box mode) and takes
// clicks, with its marks drawn here in SVG. Clicks are sent as pixels of the image file (abs-original), so the
// server saves them without sending the screenshot back. Mounted by ui/canvas.py through gr.HTML's js_on_load.
// The value may carry HTML panels for elsewhere on the page (one output instead of many) and images to load ahead.
function mountZoomCanvas(element, trigger, props, watch) {
  const COLOURS = {step: '#00aa3c', wrong: '#e61414', recovery: '#1464f0', pending: '#faa000', target: '#00aa3c',
                   corner: '#faa000', point: '#1464f0', box: '#d0008c'};
  const root = element.querySelector('.zc');
  root.tabIndex = 0;
  root.innerHTML = `<div class="zc-bar">
      <button type="button" data-zoom="out" title="Zoom out (−)">−</button>
      <button type="button" data-zoom="fit" title="Fit the view (0)">fit</button>
      <button type="button" data-zoom="one" title="One image pixel per screen pixel (1)">1:1</button>
      <button type="button" data-zoom="in" title="Zoom in (+)">+</button>
      <span class="zc-zoom"></span><span class="zc-hint"></span></div>
    <div class="zc-view"><div class="zc-stage"><img alt="screenshot" draggable="false">
      <svg class="zc-marks" xmlns="http://www.w3.org/2000/svg"></svg></div><div class="zc-empty"></div></div>`;
  const view = root.querySelector('.zc-view'), stage = root.querySelector('.zc-stage');
  const img = root.querySelector('img'), svg = root.querySelector('svg');
  const zoomLabel = root.querySelector('.zc-zoom'), hint = root.querySelector('.zc-hint');
  const empty = root.querySelector('.zc-empty');
  let data = {}, scale = 1, tx = 0, ty = 0, fitted = true, hovered = false;
  let sent = 0, corner = null, pending = null, press = null, band = null, shown = {w: 0, h: 0};
  let panelRetries = 0, held = null;  // held: clicks drawn but not sent yet (see hold())
  const ahead = new Map();  // URL -> Image being fetched and decoded, so a later swap shows it at once

  const parse = () => { try { return JSON.parse(props.value || '{}') || {}; } catch (error) { return {}; } };
  const width = () => data.width || img.naturalWidth || 1;
  const height = () => data.height || img.naturalHeight || 1;
  const fitScale = () => Math.min(view.clientWidth / width(), view.clientHeight / height()) || 1;

  function place() {
    const w = width() * scale, h = height() * scale;
    tx = w <= view.clientWidth ? (view.clientWidth - w) / 2 : Math.min(0, Math.max(view.clientWidth - w, tx));
    ty = h <= view.clientHeight ? (view.clientHeight - h) / 2 : Math.min(0, Math.max(view.clientHeight - h, ty));
    stage.style.transform = `translate(${tx}px, ${ty}px) scale(${scale})`;
    zoomLabel.textContent = `${Math.round(scale * 100)}%`;
    root.dataset.scale = scale.toFixed(4);
    draw();
  }

  function zoomTo(next, cx = view.clientWidth / 2, cy = view.clientHeight / 2) {
    next = Math.min(Math.max(next, fitScale() * 0.5, 0.02), 16);
    const px = (cx - tx) / scale, py = (cy - ty) / scale;  // the image point under the cursor stays there
    scale = next; tx = cx - px * scale; ty = cy - py * scale;
    fitted = false;
    place();
  }

  function fit() { scale = fitScale(); fitted = true; place(); }

  function imagePoint(event) {
    const rect = view.getBoundingClientRect();
    const x = Math.floor((event.clientX - rect.left - tx) / scale), y = Math.floor((event.clientY - rect.top - ty) / scale);
    return [Math.min(Math.max(x, 0), width() - 1), Math.min(Math.max(y, 0), height() - 1)];
  }

  function shape(tag, attributes, parent = svg) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    parent.appendChild(node);
    return node;
  }

  function drawPoint(mark) {
    const colour = COLOURS[mark.role] || COLOURS.step, r = 11 / scale, group = shape('g', {
      class: 'zc-mark', 'data-role': mark.role, 'data-x': mark.x, 'data-y': mark.y, stroke: colour, fill: 'none'});
    if (mark.end) {
      shape('line', {x1: mark.x + 0.5, y1: mark.y + 0.5, x2: mark.end[0] + 0.5, y2: mark.end[1] + 0.5}, group);
      shape('circle', {cx: mark.end[0] + 0.5, cy: mark.end[1] + 0.5, r: r / 2, fill: colour}, group);
      group.setAttribute('data-end', mark.end.join(','));
    }
    shape('circle', {cx: mark.x + 0.5, cy: mark.y + 0.5, r}, group);
    shape('circle', {cx: mark.x + 0.5, cy: mark.y + 0.5, r: 2.5 / scale, fill: colour}, group);
    for (const [dx, dy] of [[-1, 0], [1, 0], [0, -1], [0, 1]]) {
      shape('line', {x1: mark.x + 0.5 + dx * r, y1: mark.y + 0.5 + dy * r, x2: mark.x + 0.5 + dx * 2 * r,
                     y2: mark.y + 0.5 + dy * 2 * r}, group);
    }
  }

  function drawBox(box, role, extra = {}) {
    const [x0, y0, x1, y1] = box, colour = COLOURS[role] || COLOURS.box;
    shape('rect', {class: 'zc-box', 'data-role': role, 'data-box': box.join(','), x: x0, y: y0,
                   width: Math.max(x1 - x0, 0), height: Math.max(y1 - y0, 0), stroke: colour, fill: colour,
                   'fill-opacity': 0.1, ...extra});
  }

  function draw() {
    svg.setAttribute('viewBox', `0 0 ${width()} ${height()}`);
    svg.setAttribute('width', width()); svg.setAttribute('height', height());
    svg.replaceChildren();
    if (data.box) drawBox(data.box, data.box_role || 'box');
    if (band) drawBox(band, 'band', {'stroke-dasharray': `${6 / scale} ${4 / scale}`});
    for (const mark of data.marks || []) drawPoint(mark);
    const start = corner || pending;
    if (start) drawPoint({role: corner ? 'corner' : 'pending', x: start[0], y: start[1]});
  }

  function say(text) { hint.textContent = text || data.hint || ''; }

  function send(payload) {
    sent += 1;
    root.dataset.sent = sent;
    if (held) held.push({...payload, seq: sent});
    else trigger('click', {...payload, seq: sent, key: data.key || ''});
  }

  function boxFrom(a, b) {
    const box = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.min(Math.max(a[0], b[0]) + 1, width()),
                 Math.min(Math.max(a[1], b[1]) + 1, height())];
    if (box[2] - box[0] < 2 || box[3] - box[1] < 2) {
      say('The two corners must differ in both x and y: click or drag to the opposite corner.');
      return;
    }
    corner = null; data.box = box; data.box_role = data.box_role || 'box';
    say(`box (${box.join(', ')})`);
    draw();
    send({kind: 'box', box});
  }

  function clicked(point) {
    if (data.tool === 'box') {
      if (!corner) { corner = point; say(`first corner (${point.join(', ')}): click the opposite corner, or drag`); draw(); return; }
      boxFrom(corner, point);
      return;
    }
    const role = data.role || 'point';
    if (data.two_clicks && !pending) {
      pending = point;
    } else {
      const start = pending; pending = null;
      const mark = start ? {role, x: start[0], y: start[1], end: point} : {role, x: point[0], y: point[1]};
      data.marks = (data.marks || []).filter(m => m.role !== role).concat([mark]);
    }
    say(`(${point.join(', ')})`);
    draw();
    send({kind: 'point', x: point[0], y: point[1]});
  }

  view.addEventListener('wheel', (event) => {
    if (!data.src) return;
    event.preventDefault();
    const rect = view.getBoundingClientRect();
    zoomTo(scale * Math.exp(-event.deltaY * 0.0015), event.clientX - rect.left, event.clientY - rect.top);
  }, {passive: false});
  view.addEventListener('pointerdown', (event) => {
    if (!data.src || event.button > 1) return;
    root.focus({preventScroll: true});
    const panning = data.tool !== 'box' || event.button === 1 || event.altKey;
    press = {x: event.clientX, y: event.clientY, tx, ty, panning, moved: false, start: imagePoint(event)};
    view.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  view.addEventListener('pointermove', (event) => {
    if (!press) return;
    const dx = event.clientX - press.x, dy = event.clientY - press.y;
    if (!press.moved && Math.hypot(dx, dy) < 4) return;
    press.moved = true;
    if (press.panning) {
      tx = press.tx + dx; ty = press.ty + dy; fitted = false; place();
    } else {
      const end = imagePoint(event);
      band = [Math.min(press.start[0], end[0]), Math.min(press.start[1], end[1]),
              Math.max(press.start[0], end[0]) + 1, Math.max(press.start[1], end[1]) + 1];
      draw();
    }
  });
  view.addEventListener('pointerup', (event) => {
    if (!press) return;
    const done = press; press = null; band = null;
    if (!done.moved) clicked(imagePoint(event));
    else if (!done.panning) { corner = null; boxFrom(done.start, imagePoint(event)); }
  });
  view.addEventListener('pointercancel', () => { press = null; band = null; draw(); });
  root.addEventListener('pointerenter', () => { hovered = true; });
  root.addEventListener('pointerleave', () => { hovered = false; });
  root.querySelector('.zc-bar').addEventListener('click', (event) => {
    const what = event.target.dataset && event.target.dataset.zoom;
    if (what === 'in') zoomTo(scale * 1.25);
    else if (what === 'out') zoomTo(scale / 1.25);
    else if (what === 'fit') fit();
    else if (what === 'one') zoomTo(1);
  });
  document.addEventListener('keydown', (event) => {
    if ((!hovered && !root.contains(document.activeElement)) || root.offsetParent === null) return;
    const target = event.target, choice = ['radio', 'checkbox', 'button', 'range'];
    const typing = target && ((target.tagName === 'INPUT' && !choice.includes(target.type)) ||
                              ['TEXTAREA', 'SELECT'].includes(target.tagName) || target.isContentEditable);
    if (typing) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {'+': () => zoomTo(scale * 1.25), '=': () => zoomTo(scale * 1.25), '-': () => zoomTo(scale / 1.25),
                     '_': () => zoomTo(scale / 1.25), '0': fit, '1': () => zoomTo(1),
                     'Escape': () => { corner = null; pending = null; band = null; say(''); draw(); }};
    if (!actions[event.key]) return;
    event.preventDefault();
    event.stopPropagation();
    actions[event.key]();
  }, true);
  new ResizeObserver(() => { if (fitted) fit(); else place(); }).observe(view);

  img.addEventListener('load', () => {
    const same = shown.w === img.naturalWidth && shown.h === img.naturalHeight;
    shown = {w: img.naturalWidth, h: img.naturalHeight};
    if (!same || fitted) fit(); else place();
    root.dataset.loaded = img.getAttribute('src');
    (window.zoomCanvasLoads = window.zoomCanvasLoads || []).push({name: data.name, src: root.dataset.loaded,
                                                                   at: performance.now()});
  });

  // Panels go into the page's elements with data-zc-panel="<slot>"; an element changed since (an optimistic edit
  // clears its zcHtml) is redrawn. Slots not mounted yet are retried for a few frames.
  function applyPanels(panels) {
    let missing = false;
    for (const [slot, markup] of Object.entries(panels || {})) {
      const places = document.querySelectorAll(`[data-zc-panel="${slot}"]`);
      if (!places.length) missing = true;
      for (const place of places) {
        if (place.zcHtml !== markup) { place.innerHTML = markup; place.zcHtml = markup; }
      }
    }
    if (missing && panelRetries++ < 120) requestAnimationFrame(() => applyPanels(data.panels));
    else if (!missing) panelRetries = 0;
  }

  function loadAhead(urls) {
    for (const url of urls || []) {
      if (ahead.has(url) || url === img.getAttribute('src')) continue;
      const picture = new Image();
      picture.decoding = 'async';
      picture.src = url;
      if (picture.decode) picture.decode().catch(() => {});
      ahead.set(url, picture);
    }
    while (ahead.size > 8) ahead.delete(ahead.keys().next().value);
  }

  function update() {
    const next = parse(), before = data;
    // an answer to an older click does not undo a newer mark; another image or record starts afresh
    const caughtUp = (next.seq || 0) >= sent || next.key !== before.key;
    if (!caughtUp) { next.marks = before.marks; next.box = before.box; }
    if (next.key !== before.key || next.tool !== before.tool || !next.src) { corner = null; }
    if (caughtUp) pending = next.pending || null;
    data = next;
    root.dataset.name = data.name || '';
    root.dataset.key = data.key || '';
    root.dataset.acked = next.seq || 0;  // the last click the server has answered
    root.dataset.tool = data.tool || 'point';
    empty.textContent = data.src ? '' : (data.message || '');
    root.classList.toggle('zc-no-image', !data.src);
    if (data.src && img.getAttribute('src') !== data.src) img.setAttribute('src', data.src);
    if (!data.src) img.removeAttribute('src');
    img.style.width = `${width()}px`; img.style.height = `${height()}px`;
    say();
    draw();
    applyPanels(data.panels);
    loadAhead(data.preload);
    root.dataset.answered = data.answered || '';
    root.dataset.locked = data.locked ? '1' : '';
    root.dispatchEvent(new CustomEvent('zc-update', {bubbles: true, detail: data}));
  }

  const api = {
    get scale() { return scale; },
    get offset() { return [tx, ty]; },
    zoomTo, fit,
    // where image pixel (x, y)'s centre is on the page, for tests and benchmarks
    clientPoint(x, y) { const rect = view.getBoundingClientRect(); return [rect.left + tx + (x + 0.5) * scale, rect.top + ty + (y + 0.5) * scale]; },
    centreOn(x, y) { tx = view.clientWidth / 2 - (x + 0.5) * scale; ty = view.clientHeight / 2 - (y + 0.5) * scale; fitted = false; place(); },
    // clicks are drawn (as `role`) but not sent until release(): what they edit is about to change
    hold(role) { held = held || []; if (role) data.role = role; },
    // send the held clicks, naming what the canvas shows now; release(false) drops them
    release(sendThem = true) {
      const clicks = held || [];
      held = null;
      if (sendThem) for (const click of clicks) trigger('click', {...click, key: data.key || ''});
      else { data.marks = parse().marks; draw(); }
    },
    redrawPanels() { applyPanels(data.panels); },
  };
  root.zoomCanvas = api;
  watch('value', update);
  update();
}
