/**
 * Entry point of the volunteer join page (`/join` on the signaling server; markup in
 * build/join-page.ts). Query parameters: `invite` (a host token, required) and `name` (shown to
 * operators; letters, digits, `.`, `_`, `-` and spaces; default `volunteer-xxxxxx`).
 *
 * The invite is checked with signaling on load, so a bad link is explained before anything
 * runs. Nothing joins until the volunteer presses Join; Leave (or closing the tab) stops the
 * host and unloads the apps. The invite lives in the URL only: reloading keeps it, nothing is
 * stored. Plain web APIs only: this page must work in any current browser.
 */
import { bootHost, type BootedHost } from './host-boot.ts';
import { checkInvite, describeInvite, openJoinToken, type InviteCheck } from './join-invite.ts';
import { randomId } from './random-id.ts';
import { VOLUNTEER_SCOPE, volunteerName } from '../protocol/index.ts';
import { RateMeter, statusText, unservableApps, type HostSnapshot } from './join-status.ts';

/** What the page is doing; also `data-state` on `<body>`, for styling and tests. */
type Phase = 'checking' | 'ready' | 'blocked' | 'joining' | 'waiting' | 'serving' | 'idle' | 'reconnecting';

const SUMMARY: Record<Phase, string> = {
  checking: 'Checking your invite…',
  ready: 'Not joined. Press Join to start serving.',
  blocked: 'You cannot join with this link.',
  joining: 'Joining the network…',
  waiting: 'Joined. Waiting for an ingress to connect…',
  serving: 'Joined and serving requests. Keep this tab open.',
  idle: 'Joined, but this invite gives you nothing to serve: see the apps below.',
  reconnecting: 'Connection lost. Reconnecting…',
};
/** How long signaling may stay unreachable before the invite is checked again, and how often. */
const RECHECK_AFTER_MS = 3_000;
const RECHECK_EVERY_MS = 10_000;
const LOG_LINES = 8;
const NAME = /^[A-Za-z0-9._ -]{1,48}$/;

const params = new URLSearchParams(location.search);
/** The invite from the link; on a network open to all, a token signaling hands this page. */
let invite = params.get('invite');
const requestedName = params.get('name')?.trim() ?? '';
const name = NAME.test(requestedName) ? requestedName : `volunteer-${Math.random().toString(36).slice(2, 8)}`;

const ui = {
  invite: byId('invite'),
  inviteText: byId('invite-text'),
  inviteDetail: byId('invite-detail'),
  button: byId('toggle') as HTMLButtonElement,
  summary: byId('summary'),
  connection: byId('s-connection'),
  ingresses: byId('s-ingresses'),
  apps: byId('s-apps'),
  requests: byId('s-requests'),
  traffic: byId('s-traffic'),
  rate: byId('s-rate'),
  host: byId('s-host'),
  log: byId('log'),
};

let check: InviteCheck | null = null;
/** The running host while joined. */
let host: BootedHost | null = null;
/** The last host after Leave, so its final figures stay on screen. */
let lastHost: BootedHost | null = null;
/** Whether this host ever reached signaling (then a drop is a reconnect, not a slow join). */
let everConnected = false;
let lastConnected = false;
let disconnectedSince = 0;
let lastRecheck = 0;
let rechecking = false;
const meter = new RateMeter();
const logLines: Array<{ at: Date; text: string }> = [];

function log(text: string): void {
  console.log(`[dcdn] ${text}`);
  logLines.push({ at: new Date(), text });
  if (logLines.length > LOG_LINES) logLines.shift();
  renderLog();
}

async function init(): Promise<void> {
  if (requestedName && name !== requestedName) log(`ignored the name in the link (use letters, digits, ".", "_", "-" and spaces); using ${name}`);
  ui.button.addEventListener('click', () => void (host ? leave('you pressed Leave') : join()));
  // Ending the sessions ourselves tells the ingresses at once, rather than after a timeout.
  addEventListener('pagehide', () => leave('the tab was closed'));
  if (!invite) {
    const open = await openJoinToken();
    if (open) {
      invite = open;
      log('this network is open to volunteers: no invite needed');
    }
  }
  setInvite(await checkInvite(invite));
  render();
  setInterval(tick, 1000);
}

async function join(): Promise<void> {
  if (invite === null) return;
  ui.button.disabled = true;
  // The invite may have expired while the page sat open.
  const result = await checkInvite(invite);
  setInvite(result);
  if (!describeInvite(result).canJoin) return render();
  meter.reset();
  everConnected = false;
  lastConnected = false;
  disconnectedSince = Date.now();
  host = bootHost({ token: invite, name, hostId: tabHostId(), log, onchange: render });
  // Another live tab has this id (Chrome's "duplicate tab" copies sessionStorage): keep the fresh
  // one the agent took, so a reload stays a distinct host too.
  host.agent.onhostid = (id) => storeHostId(id);
  host.agent.start();
  log(`joining as ${name}`);
  render();
}

function leave(why: string): void {
  if (!host) return;
  host.stop();
  lastHost = host;
  host = null;
  log(`left the network (${why}); apps unloaded`);
  render();
}

function setInvite(next: InviteCheck): void {
  check = next;
  const view = describeInvite(next);
  ui.invite.dataset.tone = view.tone;
  setText(ui.inviteText, view.text);
  setText(ui.inviteDetail, view.detail ?? '');
  ui.inviteDetail.hidden = view.detail === null;
}

/** Once a second: rates, and a fresh look at the invite while signaling stays unreachable. */
function tick(): void {
  const now = Date.now();
  if (host) {
    const { stats } = host.runner;
    meter.add(now, stats.requests, stats.bytesIn + stats.bytesOut);
    if (!host.agent.signalingConnected && now - disconnectedSince > RECHECK_AFTER_MS && now - lastRecheck > RECHECK_EVERY_MS && !rechecking) {
      void recheck();
    }
  }
  render();
}

/**
 * Signaling refuses an expired or bad token before the WebSocket opens, and a browser cannot
 * see why (the client just retries), so ask whoami; give up only on a definite no.
 */
async function recheck(): Promise<void> {
  const checking = host;
  rechecking = true;
  lastRecheck = Date.now();
  try {
    // checkInvite times out on its own; this bound also covers a fetch that never settles.
    const result = await Promise.race([
      checkInvite(invite),
      new Promise<InviteCheck>((resolve) => setTimeout(() => resolve({ kind: 'unreachable', detail: 'no answer' }), RECHECK_EVERY_MS)),
    ]);
    log(`checked the invite again: ${result.kind === 'unreachable' ? `could not (${result.detail})` : result.kind}`);
    if (describeInvite(result).canJoin || host !== checking) return;
    setInvite(result);
    leave('signaling no longer accepts this invite');
  } finally {
    rechecking = false;
  }
}

function phase(): Phase {
  if (check === null) return 'checking';
  if (!host) return describeInvite(check).canJoin ? 'ready' : 'blocked';
  if (!host.agent.signalingConnected) return everConnected ? 'reconnecting' : 'joining';
  if (host.announcedApps !== null && host.announcedApps.length === 0) return 'idle';
  return host.agent.connections.length > 0 ? 'serving' : 'waiting';
}

/** The invite's apps this tab cannot serve (join-status.ts), once signaling has said. */
function unservable(h: BootedHost | null): string[] {
  if (!h || check?.kind !== 'valid') return [];
  return unservableApps(check.scope, h.announcedApps);
}

function render(): void {
  if (host) {
    const connected = host.agent.signalingConnected;
    if (connected !== lastConnected) {
      lastConnected = connected;
      everConnected ||= connected;
      if (!connected) {
        disconnectedSince = Date.now();
        // A new outage gets its own check (the rate limit is for one outage's repeated checks).
        lastRecheck = 0;
        log('lost the connection to signaling; reconnecting');
      }
    }
  }
  const current = phase();
  document.body.dataset.state = current;
  const joined = host !== null;
  setText(ui.button, joined ? 'Leave' : 'Join');
  ui.button.classList.toggle('leave', joined);
  ui.button.disabled = current === 'checking' || current === 'blocked';
  setText(ui.summary, SUMMARY[current]);

  const shown = host ?? lastHost;
  const text = statusText(shown ? snapshot(shown) : null, joined ? meter.rate : { requestsPerSecond: 0, bytesPerSecond: 0 }, joined);
  setText(ui.connection, current === 'reconnecting' ? `Reconnecting to signaling (${Math.round((Date.now() - disconnectedSince) / 1000)} s)` : text.connection);
  setList(ui.ingresses, text.ingresses, joined ? 'No ingress yet' : '–');
  setList(ui.apps, [...text.apps, ...unservable(host)], joined ? 'None loaded yet' : '–');
  setText(ui.requests, text.requests);
  setText(ui.traffic, text.traffic);
  setText(ui.rate, text.rate);
  setText(ui.host, text.host);
}

function snapshot(h: BootedHost): HostSnapshot {
  return {
    // As operators see it: signaling prefixes a volunteer's name with vol-, and `dcdn hosts
    // list` shows the signaling id.
    name: check?.kind === 'valid' && check.scope?.includes(VOLUNTEER_SCOPE) ? volunteerName(name) : name,
    hostId: h.agent.peerId,
    signalingConnected: h.agent.signalingConnected,
    connections: h.agent.connections,
    apps: h.registry.status(),
    stats: h.runner.stats,
  };
}

function renderLog(): void {
  const items = logLines
    .slice()
    .reverse()
    .map(({ at, text }) => {
      const li = document.createElement('li');
      const time = document.createElement('time');
      time.dateTime = at.toISOString();
      time.textContent = at.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
      li.append(time, ` ${text}`);
      return li;
    });
  ui.log.replaceChildren(...items);
}

/** Sets text only when it changed, so the live region announces changes, not ticks. */
function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** Fills a `<ul>` with one item per line, or one muted item when there are none. */
function setList(el: HTMLElement, lines: string[], empty: string): void {
  const wanted = lines.length > 0 ? lines : [empty];
  const current = [...el.children].map((c) => c.textContent);
  if (current.length === wanted.length && current.every((t, i) => t === wanted[i])) return;
  el.replaceChildren(
    ...wanted.map((line) => {
      const li = document.createElement('li');
      li.textContent = line;
      if (lines.length === 0) li.className = 'muted';
      return li;
    }),
  );
}

function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the join page has no #${id}`);
  return el;
}

init().catch((err: Error) => {
  log(`the page failed to start: ${err.message}`);
  setText(ui.summary, `Something went wrong: ${err.message}`);
});

const HOST_ID_KEY = 'dcdn-host-id';

/**
 * One id per tab, kept across reloads (sessionStorage is per tab): the operator's ban of this
 * tab still holds after a reload, and two tabs of one browser stay two hosts.
 */
function tabHostId(): string {
  try {
    const kept = sessionStorage.getItem(HOST_ID_KEY);
    if (kept && /^[0-9a-f-]{36}$/.test(kept)) return kept;
  } catch {
    // storage disabled: a fresh id per load
  }
  const fresh = randomId();
  storeHostId(fresh);
  return fresh;
}

/** Keeps `id` as this tab's host id across reloads (dropping any earlier one). */
function storeHostId(id: string): void {
  try {
    sessionStorage.removeItem(HOST_ID_KEY);
    sessionStorage.setItem(HOST_ID_KEY, id);
  } catch {
    // storage disabled: the id lasts as long as the page
  }
}
