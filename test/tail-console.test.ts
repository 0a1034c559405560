/**
 * Handlers' console output in /_dcdn/tail: LOG frames from a host (here a Node host, so each
 * fault can be made precisely; test/e2e-console.test.ts runs the real sandbox in Chromium) are
 * held per request and published with it, later ones on their own under the request's id, and
 * only from the host the request was sent to, within the per-request limits.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Session, Stream } from '../protocol/index.ts';
import { prettyEvent } from '../cli/tail-command.ts';
import { mintToken } from '../signaling/index.ts';
import { SECRET, startNodeNetwork, until, type NodeNetwork } from './node-network.ts';
import type { NodeHost } from './node-host.ts';

const OPERATOR = mintToken(SECRET, { role: 'operator', sub: 'tail-console-tests', ttlSeconds: 3600 });
let net: NodeNetwork;

beforeAll(async () => {
  net = await startNodeNetwork({ authorizeOperator: (t) => t === OPERATOR, consoleLogs: { limits: { linesPerRequest: 3 } }, shutdownGraceMs: 500 });
});
afterAll(() => net.close());
afterEach(() => net.removeHosts());

type Event = Record<string, unknown>;

async function openTail(query = ''): Promise<{ ws: WebSocket; events: Event[]; next(pred: (e: Event) => boolean): Promise<Event> }> {
  const ws = new WebSocket(`${net.ingress.url.replace(/^http/, 'ws')}/_dcdn/tail${query}`, { headers: { authorization: `Bearer ${OPERATOR}` } });
  const events: Event[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (d) => {
    events.push(JSON.parse(String(d)) as Event);
    for (const w of waiters.splice(0)) w();
  });
  const next = (pred: (e: Event) => boolean) =>
    new Promise<Event>((resolve) => {
      const check = () => {
        const hit = events.find(pred);
        if (hit) resolve(hit);
        else waiters.push(check);
      };
      check();
    });
  await next((e) => e.type === 'hello');
  return { ws, events, next };
}

const idOf = (s: Stream) => s.request.headers.find(([n]) => n === 'dcdn-request-id')?.[1] ?? '';

/** A host that runs `script` with its session and the request's id, then answers 200 (or `status`). */
async function loggingHost(name: string, script: (session: Session, requestId: string, s: Stream) => void): Promise<NodeHost> {
  let host!: NodeHost;
  host = await net.addHost(name, (s) => {
    s.onreset = () => {};
    const session = host.sessions[host.sessions.length - 1]!;
    script(session, idOf(s), s);
  });
  return host;
}

describe('console output in /_dcdn/tail', () => {
  it('publishes the lines a handler wrote with its request, in order, and a later line on its own under the same id', async () => {
    let later: (() => void) | null = null;
    await loggingHost('logs', (session, id, s) => {
      session.sendLog(id, 'log', 'first');
      session.sendLog(id, 'exception', 'Uncaught Error: x\n    at fetch (worker.ts:3:9)');
      s.respond({ status: 200, headers: [] }, true);
      later = () => session.sendLog(id, 'info', 'from waitUntil');
    });
    const tail = await openTail();
    const res = await fetch(`${net.ingress.url}/a`);
    const requestId = res.headers.get('dcdn-request-id');
    const event = await tail.next((e) => e.type === 'request');
    expect(event).toMatchObject({ requestId, status: 200, host: 'logs', logsCut: null });
    expect((event.logs as Event[]).map((l) => [l.level, l.text])).toEqual([
      ['log', 'first'],
      ['exception', 'Uncaught Error: x\n    at fetch (worker.ts:3:9)'],
    ]);
    later!();
    const late = await tail.next((e) => e.type === 'log');
    expect(late).toMatchObject({ type: 'log', requestId, status: 200, host: 'logs', line: { level: 'info', text: 'from waitUntil' }, cut: null });
    tail.ws.close();
  });

  it('drops lines a host writes for a request it was not sent', async () => {
    let victimId = '';
    const victim = await loggingHost('victim', (_session, id, s) => {
      victimId = id;
      s.respond({ status: 200, headers: [] }, true);
    });
    const tail = await openTail();
    const res = await fetch(`${net.ingress.url}/b`);
    expect((await tail.next((e) => e.type === 'request')).requestId).toBe(res.headers.get('dcdn-request-id'));
    expect(victimId).toBe(res.headers.get('dcdn-request-id'));
    // Another host, connected now, claims a line of that request; then the victim writes its own.
    const intruder = await net.addHost('intruder', (s) => s.respond({ status: 200, headers: [] }, true));
    // A tailed request of its own first, so the ingress listens to its LOG frames at all.
    for (let i = 0; i < 50 && !tail.events.some((e) => e.host === 'intruder'); i++) {
      const seen = tail.events.length;
      await fetch(`${net.ingress.url}/spread`);
      await tail.next(() => tail.events.length > seen);
    }
    expect(tail.events.some((e) => e.host === 'intruder')).toBe(true);
    (await intruder.ready()).sendLog(victimId, 'log', 'forged');
    victim.sessions[victim.sessions.length - 1]!.sendLog(victimId, 'log', 'genuine');
    const late = await tail.next((e) => e.type === 'log');
    expect(late).toMatchObject({ requestId: victimId, host: 'victim', line: { text: 'genuine' } });
    expect(tail.events.filter((e) => e.type === 'log')).toHaveLength(1);
    tail.ws.close();
  });

  it('keeps at most linesPerRequest lines and reports the rest, with what the host cut itself', async () => {
    await loggingHost('chatty', (session, id, s) => {
      for (let i = 0; i < 5; i++) session.sendLog(id, 'log', `line ${i}`);
      session.sendLog(id, 'cut', '', 10, 100);
      s.respond({ status: 200, headers: [] }, true);
    });
    const tail = await openTail();
    await fetch(`${net.ingress.url}/c`);
    const event = await tail.next((e) => e.type === 'request');
    expect((event.logs as Event[]).map((l) => l.text)).toEqual(['line 0', 'line 1', 'line 2']);
    expect(event.logsCut).toEqual({ lines: 12, bytes: 112 });
    tail.ws.close();
  });

  it('keeps nothing for requests that started while nobody tailed', async () => {
    let sent = 0;
    await loggingHost('untailed', (session, id, s) => {
      if (session.sendLog(id, 'log', 'unseen')) sent++;
      s.respond({ status: 200, headers: [] }, true);
    });
    await fetch(`${net.ingress.url}/d`);
    expect(sent).toBe(1);
    const tail = await openTail();
    await fetch(`${net.ingress.url}/e`);
    const event = await tail.next((e) => e.type === 'request');
    expect(event.url).toBe('/e');
    expect((event.logs as Event[]).map((l) => l.text)).toEqual(['unseen']);
    tail.ws.close();
  });
});

describe('dcdn tail --format pretty', () => {
  it('prints the console lines indented under their request, stacks aligned, and late lines naming the request', () => {
    const request = {
      type: 'request', time: '2026-12-08T00:00:01.234Z', requestId: 'abc', app: 'hello', version: 4, method: 'GET', url: '/x', status: 502, ms: 3,
      host: 'vol-1', volunteer: true, transport: 'webrtc', code: 'HOST_HANDLER_ERROR', ingress: 'ingress',
      logs: [
        { time: '2026-12-08T00:00:01.235Z', level: 'log', text: 'hi' },
        { time: '2026-12-08T00:00:01.236Z', level: 'exception', text: 'Uncaught Error: boom\n    at fetch (worker.ts:5:11)' },
      ],
      logsCut: { lines: 2, bytes: 20 },
    };
    expect(prettyEvent(request)).toBe(
      [
        '00:00:01.234 GET /x 502 3ms hello@4 vol-1 [volunteer] webrtc HOST_HANDLER_ERROR id=abc',
        '  log       hi',
        '  exception Uncaught Error: boom',
        '                at fetch (worker.ts:5:11)',
        '  (2 console lines, 20 bytes, cut: over the per-request limit)',
      ].join('\n'),
    );
    const { logs: _l, logsCut: _c, ...rest } = request;
    expect(prettyEvent({ ...rest, type: 'log', logTime: '2026-12-08T00:00:02.000Z', line: { level: 'info', text: 'later' }, cut: null })).toBe(
      '00:00:02.000 (after the response) info      later [hello@4 vol-1 [volunteer] id=abc]',
    );
  });
});
