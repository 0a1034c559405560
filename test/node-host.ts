/**
 * A host written in Node, for tests that must make a host misbehave precisely (never answer,
 * send bad heads, break protocol). It joins signaling like a tab and dials the ingress's
 * WebSocket endpoint when told to, so everything between it and the client is the real thing.
 * Well-behaved hosts in tests are real Chromium tabs; this one exists for the faults.
 */
import { WebSocket } from 'ws';
import { NodeWebSocketChannel } from '../ingress/ws-channel.ts';
import { parseLinkSignal, Session, type Channel, type Stream } from '../protocol/index.ts';
import { SignalingClient } from '../protocol/index.ts';

export interface NodeHost {
  readonly sessions: Session[];
  /** The raw channel of the latest session, to inject bytes. */
  readonly channel: Channel | null;
  /** Times an ingress told it to dial (WebSocket transport signals received). */
  readonly dials: number;
  /** Resolves when a session with an ingress is ready. */
  ready(): Promise<Session>;
  close(): void;
}

export function startNodeHost(opts: { signalUrl: string; token: string; name: string; capabilities?: string[]; onstream: (stream: Stream) => void }): NodeHost {
  const sessions: Session[] = [];
  let channel: Channel | null = null;
  let readyResolve: (s: Session) => void;
  let readyPromise = new Promise<Session>((r) => (readyResolve = r));
  /** Closed hosts ignore a dial signal that was already on its way, and a dial that opens late. */
  let closed = false;
  let dials = 0;
  const client = new SignalingClient({
    url: opts.signalUrl,
    token: opts.token,
    info: { hostId: `node-${opts.name}`, name: opts.name, userAgent: 'node-test-host', capabilities: opts.capabilities ?? [] },
    WebSocketImpl: WebSocket as never,
  });
  client.onsignal = (_from, data) => {
    const signal = parseLinkSignal(data);
    if (signal?.kind !== 'websocket' || closed) return;
    dials++;
    const url = new URL(signal.url);
    url.searchParams.set('ticket', signal.ticket);
    const ws = new WebSocket(url);
    ws.on('open', () => {
      if (closed) return void ws.close();
      channel = new NodeWebSocketChannel(ws);
      const session = new Session(channel, { role: 'server', agent: `node-host/${opts.name}` });
      session.onstream = opts.onstream;
      sessions.push(session);
      void session.ready.then(() => readyResolve(session));
    });
    ws.on('error', () => {});
  };
  client.start();
  return {
    sessions,
    get channel() {
      return channel;
    },
    get dials() {
      return dials;
    },
    ready: () => readyPromise,
    close() {
      closed = true;
      client.close();
      for (const s of sessions) s.close();
      readyPromise = new Promise<Session>((r) => (readyResolve = r));
    },
  };
}
