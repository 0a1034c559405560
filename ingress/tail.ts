/**
 * Live request events for `dcdn tail` and the dashboard's log pane: `GET /_dcdn/tail`, a
 * WebSocket for operators. Each subscriber says what it wants in the query (app, status class,
 * method, search text, sampling rate); the ingress filters before it serializes anything, and
 * does no work at all while nobody is subscribed.
 *
 * A slow reader never slows requests: an event for a subscriber whose socket already holds
 * `maxBufferedBytes` unsent is dropped and counted, and the count is sent (`{"type":"dropped"}`)
 * as soon as the socket has room again. Memory per subscriber is bounded by that limit.
 */
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { sendError } from './error-response.ts';
import type { Waterfall } from '../protocol/index.ts';
import type { ConsoleLine, LogsCut } from './request-logs.ts';

/** One finished request, as `dcdn tail` shows it. */
export interface TailEvent {
  type: 'request';
  /** ISO time the request reached the ingress. */
  time: string;
  requestId: string;
  app: string;
  /** The app's active version when the request was answered; null without a control plane. */
  version: number | null;
  method: string;
  /** Path and query as the client sent them, cut to {@link MAX_URL} characters. */
  url: string;
  /** What the client got; 0 when it went away before any head. */
  status: number;
  ms: number;
  host: string | null;
  /** Whether that host is a volunteer's browser (not the operator's). */
  volunteer: boolean;
  transport: string | null;
  code: string | null;
  /** The ingress's name. */
  ingress: string;
  /** The handler's console output and uncaught exceptions while the request ran (request-logs.ts). */
  logs: ConsoleLine[];
  /** What was cut of that output over the per-request limits; null when nothing was. */
  logsCut: LogsCut | null;
  /**
   * Where the request's time went, µs per hop (docs/performance.md, "Waterfall"), when it was
   * timed: it started while a subscriber asked for `timing`, or was sampled. Null otherwise, and
   * when the host could not say (an older host, no head).
   */
  timing?: Waterfall | null;
}

/**
 * A line the handler wrote after its request ended (`ctx.waitUntil()` work), or a report of
 * late lines cut: the request's fields (as its `request` event had them) with the line.
 */
export interface TailLogEvent extends Omit<TailEvent, 'type' | 'logs' | 'logsCut' | 'timing'> {
  type: 'log';
  /** When the line reached the ingress (the request's `time` is when the request did). */
  logTime: string;
  /** The line; null for a cut report. */
  line: ConsoleLine | null;
  cut: LogsCut | null;
}

/** What a subscriber asked for (the query of `/_dcdn/tail`). */
export interface TailFilter {
  app?: string;
  /** `5xx`, `4xx`, `200`, or a comma list of those. */
  status?: string;
  method?: string;
  search?: string;
  /** 0 < rate <= 1: the share of matching requests sent. */
  samplingRate: number;
  /**
   * Time every request while this subscriber is attached (`?timing=1`): its events carry
   * `timing`. Costs the ingress and the host two small frames and a few clock reads a request.
   */
  timing?: boolean;
}

/** Longest URL in an event; the rest is cut (a tail is for reading, not for replaying). */
export const MAX_URL = 2048;

export interface TailOptions {
  /** Bytes that may sit unsent towards one subscriber before its events are dropped. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Subscribers at once; more are refused with 503 INGRESS_TAIL_FULL. Default 32. */
  maxSubscribers?: number;
}

interface Subscriber {
  socket: WebSocket;
  filter: TailFilter;
  statuses: Array<(status: number) => boolean>;
  dropped: number;
}

/** The subscribers of one ingress and the events they get. */
export class TailHub {
  readonly #subs = new Set<Subscriber>();
  #timed = 0;
  readonly #maxBuffered: number;
  readonly maxSubscribers: number;
  /** Events dropped for slow readers since the ingress started, for tests and health. */
  dropped = 0;

  constructor(options: TailOptions = {}) {
    this.#maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
    this.maxSubscribers = options.maxSubscribers ?? 32;
  }

  /** Whether a subscriber asked for request timing (`?timing=1`). */
  get wantsTiming(): boolean {
    return this.#timed > 0;
  }

  /** Whether anyone listens: callers skip building events when not. */
  get active(): boolean {
    return this.#subs.size > 0;
  }

  get size(): number {
    return this.#subs.size;
  }

  /** Adds a subscriber until its socket closes. */
  subscribe(socket: WebSocket, filter: TailFilter): void {
    const sub: Subscriber = { socket, filter, statuses: statusMatchers(filter.status), dropped: 0 };
    this.#subs.add(sub);
    if (filter.timing) this.#timed++;
    socket.on('close', () => {
      if (this.#subs.delete(sub) && filter.timing) this.#timed--;
    });
    socket.on('error', () => socket.terminate());
    // Subscribers only listen; anything they send is ignored.
    socket.on('message', () => {});
    this.#send(sub, JSON.stringify({ type: 'hello', filter }));
  }

  /** Offers a finished request, or a late line of one, to every subscriber whose filter it matches. */
  publish(event: TailEvent | TailLogEvent): void {
    let text: string | undefined;
    for (const sub of this.#subs) {
      if (!matches(sub, event)) continue;
      if (sub.filter.samplingRate < 1 && Math.random() >= sub.filter.samplingRate) continue;
      text ??= JSON.stringify(event);
      this.#send(sub, text);
    }
  }

  /** Closes every subscriber (the ingress is stopping). */
  close(): void {
    for (const sub of this.#subs) sub.socket.close(1001, 'ingress stopping');
    this.#subs.clear();
    this.#timed = 0;
  }

  #send(sub: Subscriber, text: string): void {
    const socket = sub.socket;
    if (socket.readyState !== socket.OPEN) return;
    if (socket.bufferedAmount > this.#maxBuffered) {
      sub.dropped++;
      this.dropped++;
      return;
    }
    if (sub.dropped > 0) {
      socket.send(JSON.stringify({ type: 'dropped', count: sub.dropped }));
      sub.dropped = 0;
    }
    socket.send(text);
  }
}

function matches(sub: Subscriber, e: TailEvent | TailLogEvent): boolean {
  const f = sub.filter;
  if (f.app !== undefined && f.app !== e.app) return false;
  if (f.method !== undefined && f.method !== e.method) return false;
  if (sub.statuses.length > 0 && !sub.statuses.some((m) => m(e.status))) return false;
  if (f.search !== undefined) {
    const needle = f.search.toLowerCase();
    const logs = e.type === 'request' ? e.logs.map((l) => l.text).join('\n') : (e.line?.text ?? '');
    if (!`${e.method} ${e.url} ${e.code ?? ''} ${e.requestId} ${e.host ?? ''} ${logs}`.toLowerCase().includes(needle)) return false;
  }
  return true;
}

/** `5xx,404` → matchers; throws on anything else. */
export function statusMatchers(spec: string | undefined): Array<(status: number) => boolean> {
  if (spec === undefined || spec === '') return [];
  return spec.split(',').map((part) => {
    const p = part.trim().toLowerCase();
    if (/^[1-5]xx$/.test(p)) {
      const hundred = Number(p[0]) * 100;
      return (s: number) => s >= hundred && s < hundred + 100;
    }
    if (/^[1-5]\d\d$/.test(p)) {
      const n = Number(p);
      return (s: number) => s === n;
    }
    if (p === '0') return (s: number) => s === 0;
    throw new RangeError(`status filter ${JSON.stringify(part)}: use 5xx, 404 or a comma list of those`);
  });
}

/** Reads a subscriber's query; a bad value is an error message. */
export function parseTailQuery(q: Record<string, unknown>): TailFilter | string {
  const str = (name: string): string | undefined => {
    const v = q[name];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const filter: TailFilter = { samplingRate: 1 };
  const app = str('app');
  if (app !== undefined) filter.app = app;
  const method = str('method');
  if (method !== undefined) filter.method = method.toUpperCase();
  const search = str('search');
  if (search !== undefined) filter.search = search.slice(0, 256);
  const status = str('status');
  if (status !== undefined) {
    try {
      statusMatchers(status);
    } catch (err) {
      return (err as Error).message;
    }
    filter.status = status;
  }
  const timing = str('timing');
  if (timing !== undefined) {
    if (timing !== '1' && timing !== '0') return `timing must be 1 or 0, got ${JSON.stringify(timing.slice(0, 20))}`;
    if (timing === '1') filter.timing = true;
  }
  const rate = str('sampling');
  if (rate !== undefined) {
    const n = Number(rate);
    if (!(n > 0 && n <= 1)) return `sampling must be a number in (0, 1], got ${JSON.stringify(rate)}`;
    filter.samplingRate = n;
  }
  return filter;
}

/**
 * Registers `GET /_dcdn/tail` in a scope where @fastify/websocket is registered. The token comes
 * as `Authorization: Bearer` or `?token=` and must be one `authorize` accepts.
 */
export function registerTail(scope: FastifyInstance, hub: TailHub, authorize: ((token: string) => boolean) | undefined): void {
  const filters = new WeakMap<object, TailFilter>();
  scope.get(
    '/_dcdn/tail',
    {
      websocket: true,
      preValidation: async (request, reply) => {
        const query = request.query as Record<string, unknown>;
        const header = request.headers.authorization;
        const token = (typeof header === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(header)?.[1] : undefined) ?? (typeof query.token === 'string' ? query.token : undefined);
        if (!authorize || token === undefined || !authorize(token)) {
          reply.hijack();
          return sendError(reply.raw, 'INGRESS_UNAUTHORIZED', authorize ? 'send an operator token as Authorization: Bearer or ?token=' : 'this ingress was started without the network secret, so it cannot check operator tokens');
        }
        if (!request.ws) {
          reply.hijack();
          return sendError(reply.raw, 'INGRESS_BAD_REQUEST', '/_dcdn/tail only takes WebSocket upgrades');
        }
        const filter = parseTailQuery(query);
        if (typeof filter === 'string') {
          reply.hijack();
          return sendError(reply.raw, 'INGRESS_BAD_REQUEST', filter);
        }
        if (hub.size >= hub.maxSubscribers) {
          reply.hijack();
          return sendError(reply.raw, 'INGRESS_TAIL_FULL', `at most ${hub.maxSubscribers} tails at once`);
        }
        filters.set(request, filter);
      },
    },
    (socket: WebSocket, request) => {
      const filter = filters.get(request);
      if (!filter) return socket.close(1008, 'no filter');
      hub.subscribe(socket, filter);
    },
  );
}
