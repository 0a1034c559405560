/**
 * PeerForwarder over real sockets: which peer answers, when a second is asked, and what the
 * client gets when none can be reached. The peers are plain HTTP servers scripted per test.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterIngress } from '../protocol/index.ts';
import { PeerForwarder, verifyPeerRequest, type ForwardOutcome } from './peer-forward.ts';

const KEY = 'peer-key-for-tests-0123456789';
const servers: Server[] = [];
const outcomes: ForwardOutcome[] = [];
const forwarder = new PeerForwarder({}, (o) => outcomes.push(o));

afterEach(async () => {
  outcomes.length = 0;
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** A peer that checks the signature and answers with `status` and `code`, echoing the body it got. */
function peer(name: string, status: number, code?: string): Promise<string> {
  return listen((req, res) => {
    const auth = verifyPeerRequest(KEY, req.headers['dcdn-peer'], req.method!, req.url!, Date.now(), 30_000);
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      res.writeHead(status, { ...(code ? { 'dcdn-error': code } : {}), 'dcdn-via': `${'from' in auth ? auth.from : '?'},${name}`, 'dcdn-host': `${name}-host` });
      res.end(`${name}:${req.method}:${body}`);
    });
  });
}

/** A closed port: nothing listens there. */
async function deadUrl(): Promise<string> {
  const url = await listen(() => {});
  const s = servers.pop()!;
  await new Promise((r) => s.close(r));
  return url;
}

const entry = (name: string, peerUrl: string): ClusterIngress => ({ name, region: 'default', weight: 1, draining: false, peerUrl });

/** An ingress front that forwards everything to `peers`. */
async function front(peers: ClusterIngress[]): Promise<string> {
  return listen((req, res) => {
    const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
    void forwarder.forward({ req, res, headers: [['host', 'app.localhost'], ...(hasBody ? [['content-length', req.headers['content-length']!] as [string, string]] : [])], hasBody, peers, self: 'A', peerKey: KEY, localError: 'INGRESS_NO_HOST' });
  });
}

describe('PeerForwarder', () => {
  it('relays the first peer\'s answer, signed, with its dcdn-* headers', async () => {
    const url = await front([entry('B', await peer('B', 200)), entry('C', await peer('C', 200))]);
    const r = await fetch(`${url}/x`);
    expect(r.status).toBe(200);
    expect(r.headers.get('dcdn-via')).toBe('A,B');
    expect(r.headers.get('dcdn-host')).toBe('B-host');
    expect(await r.text()).toBe('B:GET:');
    expect(outcomes).toEqual(['answered']);
  });

  it('asks a second peer for a GET the first had no host for', async () => {
    const url = await front([entry('B', await peer('B', 503, 'INGRESS_NO_HOST')), entry('C', await peer('C', 200))]);
    const r = await fetch(`${url}/x`);
    expect(r.headers.get('dcdn-via')).toBe('A,C');
    expect(outcomes).toEqual(['refused', 'answered']);
  });

  it('asks a second peer for a GET when the first cannot be reached', async () => {
    const url = await front([entry('B', await deadUrl()), entry('C', await peer('C', 200))]);
    const r = await fetch(`${url}/x`);
    expect(r.headers.get('dcdn-via')).toBe('A,C');
    expect(outcomes).toEqual(['unreachable', 'answered']);
  });

  it('never asks a second peer for a POST: the first one\'s 503 is the answer, its body streamed there', async () => {
    const url = await front([entry('B', await peer('B', 503, 'INGRESS_HOSTS_BUSY')), entry('C', await peer('C', 200))]);
    const r = await fetch(`${url}/x`, { method: 'POST', body: 'payload' });
    expect(r.status).toBe(503);
    expect(r.headers.get('dcdn-error')).toBe('INGRESS_HOSTS_BUSY');
    expect(r.headers.get('dcdn-via')).toBe('A,B');
    expect(await r.text()).toBe('B:POST:payload');
    expect(outcomes).toEqual(['answered']);
  });

  it('does not retry a peer\'s other errors, even for a GET', async () => {
    const url = await front([entry('B', await peer('B', 502, 'INGRESS_HOST_LOST')), entry('C', await peer('C', 200))]);
    const r = await fetch(`${url}/x`);
    expect(r.status).toBe(502);
    expect(r.headers.get('dcdn-via')).toBe('A,B');
  });

  it('answers its own 503 naming only itself when no peer can be reached', async () => {
    const url = await front([entry('B', await deadUrl()), entry('C', await deadUrl())]);
    const r = await fetch(`${url}/x`);
    expect(r.status).toBe(503);
    expect(r.headers.get('dcdn-error')).toBe('INGRESS_NO_HOST');
    expect(r.headers.get('dcdn-via')).toBe('A');
    expect(await r.text()).toMatch(/could be reached \(B, C\)/);
    expect(outcomes).toEqual(['unreachable', 'unreachable']);
  });
});
