/// The dashboard's script. Plain JavaScript, no library. It builds every element with
/// `textContent` and attributes (never `innerHTML`), so that values clients registered
/// (tags, metadata, check output) show as text; keeps the token in `sessionStorage` and
/// sends it only in an `Authorization` header (streams are read with `fetch`, which can send
/// one, not `EventSource`); follows `/watch` streams and resumes them with the last index.
enum DashboardScript {
    static let text = #"""
'use strict';
(() => {
  const TOKEN_KEY = 'registry-token';
  const PAGE = 200;
  const MAX_PAGE = 10000;        // the most /services lists in one answer
  const INSTANCE_PAGE = 500;     // a service's view shows at most this many instances
  const STATUSES = ['UP', 'STARTING', 'DOWN', 'OUT_OF_SERVICE'];
  const HEALTHS = ['passing', 'warning', 'critical'];
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    access: null,
    accessError: null,
    view: null,
    offset: 0,
  };

  // ---- DOM -------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    append(node, children);
    return node;
  }
  function append(node, children) {
    for (const child of [children].flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const $ = (id) => document.getElementById(id);
  function badge(text, cls, title) { return el('span', { class: 'badge ' + cls, title }, text); }
  function statusBadge(status) { return badge(status, 's-' + status); }
  function healthBadge(health) { return badge(health, 'h-' + health); }

  // Re-rendering replaces elements; the keyboard focus goes back to the one with the same key.
  function keepingFocus(render) {
    const key = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    render();
    if (key) {
      const again = document.querySelector('[data-key="' + CSS.escape(key) + '"]');
      if (again) again.focus();
    }
  }

  // ---- Time ------------------------------------------------------------------------------
  const serverNow = () => Date.now() + state.offset;
  function span(ms) {
    let s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + ' s';
    let m = Math.floor(s / 60); s %= 60;
    if (m < 60) return m + ' m ' + s + ' s';
    let h = Math.floor(m / 60); m %= 60;
    if (h < 24) return h + ' h ' + m + ' m';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }
  function ticking(since, prefix, suffix) {
    const node = el('span', { 'data-since': since, 'data-prefix': prefix || '', 'data-suffix': suffix || '' });
    node.textContent = (prefix || '') + span(serverNow() - since) + (suffix || '');
    return node;
  }
  function tick() {
    const now = serverNow();
    for (const node of document.querySelectorAll('[data-since]')) {
      node.textContent = node.dataset.prefix + span(now - Number(node.dataset.since)) + node.dataset.suffix;
    }
  }
  // The registry's clock from an instance: its first registration plus its uptime.
  function learnOffset(instances) {
    for (const instance of instances || []) {
      const at = Date.parse(instance.registered_at);
      if (Number.isFinite(at) && typeof instance.uptime_seconds === 'number') {
        state.offset = at + instance.uptime_seconds * 1000 - Date.now();
        return;
      }
    }
  }

  // ---- The API ---------------------------------------------------------------------------
  function headers(extra) {
    const all = Object.assign({}, extra || {});
    if (state.token) all['Authorization'] = 'Bearer ' + state.token;
    return all;
  }
  async function call(method, path, body) {
    const init = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : {}), cache: 'no-store' };
    if (body) init.body = JSON.stringify(body);
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      return { ok: false, status: 0, data: null, message: 'the registry cannot be reached (' + error.message + ')' };
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    const message = data && typeof data.message === 'string' ? data.message : 'HTTP ' + response.status;
    return { ok: response.ok, status: response.status, data, message };
  }

  // A Server-Sent Events stream read with fetch (which can send the token in a header),
  // resumed with `index=` after the last event, and dropped after 45 s without a byte
  // (the registry sends a comment every 15 s).
  class Stream {
    constructor(path, handlers) {
      this.path = path;
      this.handlers = handlers;
      this.index = null;
      this.attempt = 0;
      this.stopped = false;
    }
    start() { this.run(); return this; }
    stop() {
      this.stopped = true;
      clearTimeout(this.retry);
      clearTimeout(this.idle);
      if (this.controller) this.controller.abort();
    }
    url() {
      if (this.index === null) return this.path;
      return this.path + (this.path.includes('?') ? '&' : '?') + 'index=' + this.index;
    }
    armIdle() {
      clearTimeout(this.idle);
      this.idle = setTimeout(() => { this.silent = true; this.controller.abort(); }, 45000);
    }
    async run() {
      if (this.stopped) return;
      this.controller = new AbortController();
      this.silent = false;
      let reason = 'the registry closed the stream';
      try {
        const response = await fetch(this.url(), {
          headers: headers({ Accept: 'text/event-stream' }), signal: this.controller.signal, cache: 'no-store' });
        if (!response.ok) {
          let message = 'HTTP ' + response.status;
          try { const data = await response.json(); if (data && data.message) message = data.message; } catch (error) { /* no body */ }
          if (response.status >= 400 && response.status < 500 && response.status !== 429) {
            this.handlers.refused(message, response.status);
            return;
          }
          throw new Error(message);
        }
        this.attempt = 0;
        setLive('up', this.index);
        this.armIdle();
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          this.armIdle();
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
          let cut;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            this.dispatch(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch (error) {
        if (this.stopped) return;
        reason = this.silent ? 'nothing arrived for 45 s' : (error.name === 'AbortError' ? 'aborted' : error.message || String(error));
      }
      clearTimeout(this.idle);
      if (this.stopped) return;
      this.attempt += 1;
      const delay = Math.min(5000, 250 * 2 ** Math.min(this.attempt, 5));
      setLive('down', this.index, reason, delay);
      this.retry = setTimeout(() => this.run(), delay);
    }
    dispatch(block) {
      let id = null;
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (event !== 'state' || data.length === 0) return;
      let parsed;
      try { parsed = JSON.parse(data.join('\n')); } catch (error) { return; }
      if (id !== null && /^[0-9]+$/.test(id)) this.index = Number(id);
      setLive('up', this.index);
      // A fault in drawing is the page's, not the stream's: reported, and the stream goes on.
      try { this.handlers.state(parsed, this.index); } catch (error) { console.error('render', error); }
    }
  }

  function setLive(kind, index, reason, delay) {
    const live = $('live');
    live.className = 'live live-' + kind;
    if (kind === 'up') {
      live.textContent = 'Live' + (index !== null && index !== undefined ? ' · index ' + index : '');
    } else if (kind === 'down') {
      live.textContent = 'Stream down: ' + reason + '. Reconnecting in ' + Math.round(delay / 100) / 10 + ' s'
        + (index !== null ? ' from index ' + index : '') + '…';
    } else {
      live.textContent = reason || 'Connecting…';
    }
  }

  // ---- Access ----------------------------------------------------------------------------
  function patternMatches(pattern, name) {
    const parts = pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&'));
    return new RegExp('^' + parts.join('.*') + '$').test(name);
  }
  function mayWrite(service) {
    const access = state.access;
    if (!access) return false;
    return access.operator || access.write.some((pattern) => patternMatches(pattern, service));
  }
  function who() {
    const access = state.access;
    if (!access) return 'this caller';
    return access.caller === 'token' ? 'the token "' + access.name + '"' : 'anonymous requests';
  }
  function readOnlyReason(service) {
    if (state.accessError) return state.accessError;
    if (!state.access) return 'what this caller may do is not known yet';
    if (!state.access.writes_something) {
      return 'Read-only: ' + who() + ' may not change anything here' + (state.token ? '.' : '; enter a token that may write to set statuses or deregister.');
    }
    return 'Read-only for ' + service + ': ' + who() + ' may write only ' + state.access.write.join(', ') + '.';
  }
  async function loadAccess() {
    const answer = await call('GET', '/access');
    const note = $('access');
    state.access = answer.ok ? answer.data : null;
    state.accessError = answer.ok ? null : (answer.status === 401 ? 'The token is not one this registry knows: ' + answer.message : answer.message);
    note.textContent = '';
    if (!answer.ok) {
      note.className = 'access denied';
      note.textContent = state.accessError;
    } else if (!state.access.acl) {
      note.className = 'access writable';
      note.textContent = 'No ACL file is in force: every client may read and write, so the actions below are enabled. Start the registry with --acl-file to require tokens.';
    } else if (state.access.writes_something) {
      note.className = 'access writable';
      note.textContent = (state.access.caller === 'token' ? 'Signed in with the token "' + state.access.name + '"' : 'Anonymous requests')
        + ': may write ' + state.access.write.join(', ') + (state.access.operator ? ' (operator)' : '') + '.';
    } else {
      note.className = 'access readonly';
      note.textContent = readOnlyReason('');
    }
  }

  // ---- Views -----------------------------------------------------------------------------
  function parseRoute() {
    const hash = location.hash.replace(/^#/, '') || '/';
    const [path, query] = hash.split('?');
    const params = new URLSearchParams(query || '');
    if (path.startsWith('/service/')) {
      let name = path.slice('/service/'.length);
      try { name = decodeURIComponent(name); } catch (error) { /* shown as typed */ }
      return { kind: 'service', name, params };
    }
    return { kind: 'services', params };
  }
  function show() {
    if (state.view) state.view.stop();
    const route = parseRoute();
    const main = $('main');
    main.textContent = '';
    document.title = 'Service registry';
    state.view = route.kind === 'service' ? serviceView(main, route.name) : servicesView(main, route.params);
  }

  function problemOf(entry) {
    const total = entry.total_instances;
    const byHealth = entry.instances_by_health || {};
    return (entry.instances_by_status.UP || 0) !== total || (byHealth.passing || 0) !== total;
  }

  function servicesView(main, params) {
    const filters = {
      prefix: params.get('prefix') || '', tag: params.get('tag') || '', zone: params.get('zone') || '',
      status: params.get('status') || '', health: params.get('health') || '', problems: params.get('order') === 'problems',
    };
    let limit = PAGE;
    let stream = null;
    let debounce = null;
    const summary = el('p', { class: 'summary', id: 'services-summary', 'aria-live': 'polite' }, 'Loading…');
    const body = el('tbody', { id: 'services-body' });
    const more = el('button', { type: 'button', class: 'more', hidden: true, onclick: () => { limit = Math.min(MAX_PAGE, limit * 4); restart(); } }, 'Show more');
    const field = (label, name, attrs) => el('label', {}, label, el('input', Object.assign({
      name, value: filters[name], autocomplete: 'off', spellcheck: 'false',
      oninput: (event) => { filters[name] = event.target.value.trim(); schedule(); } }, attrs)));
    const choice = (label, name, options) => {
      const select = el('select', { name, onchange: (event) => { filters[name] = event.target.value; schedule(0); } },
        el('option', { value: '' }, 'any'), options.map((option) => el('option', { value: option, selected: filters[name] === option }, option)));
      return el('label', {}, label, select);
    };
    const form = el('form', { class: 'filters', role: 'search', 'aria-label': 'Filter services', onsubmit: (event) => event.preventDefault() },
      field('Name begins with', 'prefix', { id: 'filter-prefix', placeholder: 'payment-' }),
      field('Tag', 'tag', { id: 'filter-tag' }),
      field('Zone', 'zone', { id: 'filter-zone' }),
      choice('Status', 'status', STATUSES),
      choice('Health', 'health', HEALTHS),
      el('label', { class: 'check' }, el('input', { type: 'checkbox', id: 'filter-problems', checked: filters.problems,
        onchange: (event) => { filters.problems = event.target.checked; schedule(0); } }), 'Problems first'));
    const table = el('div', { class: 'table-wrap' }, el('table', { id: 'services' },
      el('caption', { class: 'muted', hidden: true }, 'Services'),
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'Service'), el('th', { scope: 'col' }, 'Instances'), el('th', { scope: 'col' }, 'Status'),
        el('th', { scope: 'col' }, 'Health'), el('th', { scope: 'col' }, 'Tags'), el('th', { scope: 'col' }, 'Zones'),
        el('th', { scope: 'col' }, 'Index'))),
      body));
    append(main, [el('h2', { tabindex: '-1', id: 'view-title' }, 'Services'), form, summary, table, more]);

    function query() {
      const q = new URLSearchParams();
      for (const name of ['prefix', 'tag', 'zone', 'status', 'health']) if (filters[name]) q.set(name, filters[name]);
      if (filters.problems) q.set('order', 'problems');
      return q;
    }
    function schedule(delay) {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        limit = PAGE;
        const q = query().toString();
        history.replaceState(null, '', '#/' + (q ? '?' + q : ''));
        restart();
      }, delay === undefined ? 250 : delay);
    }
    function render(listing) {
      const names = Object.keys(listing.services);
      const entries = names.map((name) => [name, listing.services[name]]);
      entries.sort((a, b) => {
        if (filters.problems) { const d = Number(problemOf(b[1])) - Number(problemOf(a[1])); if (d) return d; }
        return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
      });
      keepingFocus(() => {
        body.textContent = '';
        for (const [name, entry] of entries) {
          const problem = problemOf(entry);
          append(body, [el('tr', { class: problem ? 'problem' : null, 'data-service': name },
            el('th', { scope: 'row' }, el('a', { href: '#/service/' + encodeURIComponent(name), 'data-key': 'service:' + name }, name),
              problem ? [' ', badge('needs attention', 'h-critical')] : null),
            el('td', { 'data-label': 'Instances' }, String(entry.total_instances)),
            el('td', { 'data-label': 'Status' }, STATUSES.filter((s) => entry.instances_by_status[s]).map((s) => badge(s + ' ' + entry.instances_by_status[s], 's-' + s))),
            el('td', { 'data-label': 'Health' }, HEALTHS.filter((h) => (entry.instances_by_health || {})[h]).map((h) => badge(h + ' ' + entry.instances_by_health[h], 'h-' + h))),
            el('td', { 'data-label': 'Tags' }, (entry.tags || []).map((tag) => badge(tag, 'tag'))),
            el('td', { 'data-label': 'Zones' }, (entry.zones || []).join(', ')),
            el('td', { 'data-label': 'Index', class: 'mono' }, String(entry.index)))]);
        }
      });
      const matching = listing.matching_services === undefined ? names.length : listing.matching_services;
      summary.textContent = names.length === 0
        ? (matching === 0 && !query().toString() ? 'No services are registered.' : 'No service matches these filters.')
        : 'Showing ' + names.length + ' of ' + matching + ' service' + (matching === 1 ? '' : 's') + (query().toString() ? ' that match' : '') + '.';
      more.hidden = names.length >= matching || limit >= MAX_PAGE;
    }
    function restart() {
      if (stream) stream.stop();
      const q = query();
      q.set('limit', String(limit));
      stream = new Stream('/watch?' + q.toString(), {
        state: render,
        refused: (message, status) => {
          body.textContent = '';
          summary.textContent = '';
          append(summary, el('span', { class: 'error' }, (status === 400 ? 'The registry refused this filter: ' : 'The registry refused: ') + message));
          setLive('up', null);
        },
      }).start();
    }
    restart();
    return { stop: () => { clearTimeout(debounce); if (stream) stream.stop(); } };
  }

  function serviceView(main, name) {
    let stream = null;
    let poll = null;
    let current = null;
    const title = el('h2', { tabindex: '-1', id: 'view-title' }, name);
    const summary = el('p', { class: 'summary', id: 'service-summary' }, 'Loading…');
    const note = el('p', { class: 'summary', id: 'service-note', role: 'status', 'aria-live': 'polite' });
    const list = el('div', { class: 'instances', id: 'instances' });
    append(main, [el('p', {}, el('a', { href: '#/' }, '← All services')), title, summary, note, list]);

    function render(answer) {
      current = answer;
      const instances = answer.instances || [];
      document.title = name + ' · Service registry';
      learnOffset(instances);
      const counts = {};
      const healths = {};
      for (const instance of instances) {
        counts[instance.status] = (counts[instance.status] || 0) + 1;
        healths[instance.health] = (healths[instance.health] || 0) + 1;
      }
      summary.textContent = '';
      if (instances.length === 0) {
        summary.textContent = answer.message ? answer.message + '.' : 'No instances.';
      } else {
        append(summary, [instances.length + ' instance' + (instances.length === 1 ? '' : 's') + ': ',
          STATUSES.filter((s) => counts[s]).map((s) => badge(s + ' ' + counts[s], 's-' + s)),
          HEALTHS.filter((h) => healths[h]).map((h) => badge(h + ' ' + healths[h], 'h-' + h))]);
      }
      if (instances.length >= INSTANCE_PAGE) {
        append(summary, ' (the first ' + INSTANCE_PAGE + ', in registration order: the services table has the whole count)');
      }
      const writable = mayWrite(name);
      if (!writable && instances.length > 0) note.textContent = readOnlyReason(name);
      keepingFocus(() => {
        list.textContent = '';
        for (const instance of instances) append(list, card(instance, writable));
      });
    }

    function card(instance, writable) {
      const problem = instance.status !== 'UP' || instance.health !== 'passing';
      const since = Date.parse(instance.registered_at);
      const beat = Date.parse(instance.last_heartbeat);
      const meta = instance.metadata || {};
      const checks = instance.checks || [];
      const rows = [
        ['Address', el('code', {}, instance.address)],
        ['Status', [statusBadge(instance.status), instance.protected ? badge('protected', 'protected', 'Expiry protection keeps this instance') : null]],
        ['Health', healthBadge(instance.health)],
        ['Zone', instance.zone === null ? el('span', { class: 'muted' }, 'none') : instance.zone],
        ['Weight', String(instance.weight)],
        ['Tags', instance.tags.length ? instance.tags.map((tag) => badge(tag, 'tag')) : el('span', { class: 'muted' }, 'none')],
        ['Metadata', Object.keys(meta).length
          ? el('ul', { class: 'checks' }, Object.keys(meta).map((key) => el('li', {}, el('code', {}, key), ' = ', el('code', {}, meta[key]))))
          : el('span', { class: 'muted' }, 'none')],
        ['Uptime', Number.isFinite(since) ? ticking(since) : '?'],
        ['Last heartbeat', Number.isFinite(beat) ? ticking(beat, '', ' ago') : '?'],
        ['TTL', instance.ttl_seconds === null ? 'never expires' : instance.ttl_seconds + ' s'],
      ];
      if (checks.length) {
        rows.push(['Checks', el('ul', { class: 'checks' }, checks.map((check) => el('li', {},
          healthBadge(check.status), ' ', check.name || check.id, ' ',
          el('span', { class: 'muted' }, '(' + check.type + (check.target ? ' ' + check.target : '') + (check.ttl ? ' ' + check.ttl : '') + ')'),
          check.output ? el('pre', {}, check.output) : null)))]);
      }
      const actions = el('div', { class: 'actions' });
      const key = instance.id;
      if (instance.status === 'OUT_OF_SERVICE') {
        actions.append(el('button', { type: 'button', disabled: !writable, 'data-key': 'up:' + key,
          onclick: () => act('/status', { service: name, id: instance.id, status: 'UP' }, 'Set ' + instance.id + ' UP') }, 'Set UP'));
      } else {
        actions.append(el('button', { type: 'button', disabled: !writable, 'data-key': 'oos:' + key,
          onclick: () => act('/status', { service: name, id: instance.id, status: 'OUT_OF_SERVICE' }, 'Set ' + instance.id + ' OUT_OF_SERVICE') },
        'Set OUT_OF_SERVICE'));
      }
      actions.append(el('button', { type: 'button', class: 'danger', disabled: !writable, 'data-key': 'dereg:' + key,
        onclick: () => {
          if (window.confirm('Deregister instance ' + instance.id + ' of ' + name + '? Its clients will stop finding it.')) {
            act('/deregister', { service: name, id: instance.id }, 'Deregistered ' + instance.id);
          }
        } }, 'Deregister…'));
      return el('article', { class: 'instance' + (problem ? ' problem' : ''), 'data-instance': instance.id, 'aria-label': 'Instance ' + instance.id },
        el('h3', {}, instance.id),
        el('dl', {}, rows.map(([label, value]) => [el('dt', {}, label), el('dd', {}, value)])),
        actions);
    }

    async function act(path, body, done) {
      note.textContent = 'Sending…';
      const answer = await call('POST', path, body);
      note.textContent = '';
      if (answer.ok) note.textContent = done + '.';
      else append(note, el('span', { class: 'error' }, 'Refused (' + answer.status + '): ' + answer.message));
    }

    // Heartbeats that change nothing move no index, so no event: their times are read
    // every 5 s and the clocks tick in between.
    async function refresh() {
      const answer = await call('GET', '/discover/' + encodeURIComponent(name) + '?status=any&limit=' + INSTANCE_PAGE);
      if (answer.ok && answer.data && current && !stream.stopped) render(answer.data);
    }
    stream = new Stream('/watch/' + encodeURIComponent(name) + '?status=any&limit=' + INSTANCE_PAGE, {
      state: render,
      refused: (message) => {
        list.textContent = '';
        summary.textContent = '';
        append(summary, el('span', { class: 'error' }, 'The registry refused: ' + message));
      },
    }).start();
    poll = setInterval(refresh, 5000);
    return { stop: () => { stream.stop(); clearInterval(poll); } };
  }

  // ---- Cluster ---------------------------------------------------------------------------
  // A single registry stays single until it restarts: asked once, not every 5 s.
  let single = false;
  async function loadCluster() {
    const section = $('cluster');
    if (single || !state.access || !state.access.operator) { section.hidden = true; return; }
    const answer = await call('GET', '/cluster');
    if (answer.ok && answer.data && answer.data.mode === 'single') single = true;
    if (!answer.ok || !answer.data || answer.data.mode !== 'cluster') { section.hidden = true; return; }
    const c = answer.data;
    const bodyNode = $('cluster-body');
    bodyNode.textContent = '';
    append(bodyNode, [
      el('p', {}, 'This replica: ', el('strong', {}, c.replica.name), ' (' + c.replica.role + (c.replica.ready ? '' : ', loading') + ')',
        ' · leader: ', c.leader ? el('strong', { id: 'cluster-leader' }, c.leader.name) : el('span', { class: 'error' }, 'none known'),
        c.replica.last_contact_ms === null ? '' : ' · last contact with etcd ' + c.replica.last_contact_ms + ' ms ago'),
      el('div', { class: 'table-wrap' }, el('table', { id: 'replicas' },
        el('thead', {}, el('tr', {}, ['Replica', 'URL', 'Role', 'Change index', 'Behind this replica'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, c.replicas.map((r) => el('tr', {},
          el('th', { scope: 'row' }, r.name), el('td', {}, el('code', {}, r.url)),
          el('td', {}, r.leader ? badge('leader', 's-UP') : 'follower'),
          el('td', { class: 'mono' }, String(r.change_index)), el('td', { class: 'mono' }, String(r.lag_behind_this_replica))))))),
      el('p', {}, 'etcd: ', c.etcd.members.map((m) => [badge(m.healthy ? 'healthy' : 'unhealthy', m.healthy ? 'h-passing' : 'h-critical'),
        ' ', el('code', {}, m.url), m.version ? ' ' + m.version : '', m.is_leader ? ' (raft leader)' : '', ' ']))]);
    section.hidden = false;
  }

  // ---- Start -----------------------------------------------------------------------------
  function useToken(token) {
    state.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    $('token').placeholder = token ? 'a token is in use' : 'none: anonymous';
    loadAccess().then(() => { loadCluster(); show(); });
  }
  document.addEventListener('DOMContentLoaded', () => {
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('token');
      const token = input.value.trim();
      input.value = '';
      useToken(token);
    });
    $('token-forget').addEventListener('click', () => useToken(''));
    $('token').placeholder = state.token ? 'a token is in use' : 'none: anonymous';
    window.addEventListener('hashchange', () => { show(); const t = $('view-title'); if (t) t.focus(); });
    setInterval(tick, 1000);
    setInterval(loadCluster, 5000);
    loadAccess().then(() => { loadCluster(); show(); });
  });
})();
"""#
}
