/**
 * The ingress against hosts that misbehave on purpose (Node hosts over the real WebSocket
 * transport, real signaling, real HTTP on port 0). Each test asserts the status and the code.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Ingress } from '../ingress/index.ts';
import { encodeFrame, FrameType, type Stream } from '../protocol/index.ts';
import type { NodeHost } from './node-host.ts';
import { startNodeNetwork, until, type NodeNetwork } from './node-network.ts';

let net: NodeNetwork;
let ingress: Ingress;

beforeAll(async () => {
  net = await startNodeNetwork({
    proxy: { headTimeoutMs: 400, maxBodyBytes: 1024 * 1024, maxUrlLength: 2048, maxHeaderBytes: 4096 },
    pool: { penaltyBaseMs: 200 },
    session: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1000 },
    shutdownGraceMs: 2000,
  });
  ingress = net.ingress;
});

afterAll(() => net.close());
afterEach(() => net.removeHosts());

const addHost = (name: string, onstream: (s: Stream) => void) => net.addHost(name, onstream);

const ok = (body = 'ok') => (s: Stream) => {
  s.onreset = () => {};
  s.ondata = (c) => s.consume(c.byteLength);
  s.respond({ status: 200, headers: [['content-type', 'text/plain']] });
  void s.write(new TextEncoder().encode(body)).then(() => s.end());
};

interface Result {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  aborted: boolean;
}

/** A plain HTTP request with full control of headers; reports a cut response as `aborted`. */
function send(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${ingress.url}${path}`, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const finish = (aborted: boolean) =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString(), aborted });
      res.on('end', () => finish(false));
      res.on('aborted', () => finish(true));
      res.on('error', () => finish(true));
    });
    // A connection cut before the head arrived is a cut response too.
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNRESET' ? resolve({ status: 0, headers: {}, body: '', aborted: true }) : reject(err),
    );
    req.end(opts.body);
  });
}

/** Writes raw bytes on a socket and returns what comes back until the server closes. */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const u = new URL(ingress.url);
    const sock = connect(Number(u.port), u.hostname, () => sock.end(bytes));
    let out = '';
    sock.on('data', (d) => (out += d.toString()));
    sock.on('close', () => resolve(out));
    sock.on('error', reject);
  });
}

/**
 * Uploads like a client that reads while it sends: writes `head`, then `count` body frames
 * (respecting backpressure) and `tail`, stopping as soon as the server answers. Resolves with
 * the complete answer (head and `content-length` body) and how many body bytes went out before
 * it came; a connection reset before an answer leaves `response` empty, so a test asserting on
 * the response fails rather than passes vacuously.
 */
function upload(head: string, frame: Buffer, count: number, tail = '', opts: { keepSending?: boolean; gapMs?: number } = {}): Promise<{ response: string; sentBytes: number; error?: string }> {
  return new Promise((resolve) => {
    const u = new URL(ingress.url);
    let response = '';
    let sentBytes = 0;
    let answered = false;
    let error: string | undefined;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      sock.destroy();
      resolve({ response, sentBytes, ...(error ? { error } : {}) });
    };
    // Half-open allowed: like a client busy uploading, it keeps sending after the server's FIN.
    const sock = connect({ port: Number(u.port), host: u.hostname, allowHalfOpen: true }, () => {
      sock.write(head);
      void (async () => {
        const stop = () => sock.destroyed || (answered && !opts.keepSending);
        for (let i = 0; i < count && !stop(); i++) {
          sentBytes += frame.byteLength;
          if (!sock.write(frame)) await new Promise((r) => (sock.once('drain', r), sock.once('close', r)));
          if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
        }
        if (!stop() && tail) sock.write(tail);
        if (opts.keepSending && !sock.destroyed) sock.end();
      })();
    });
    sock.on('data', (d) => {
      answered = true;
      response += d.toString('latin1');
      const split = response.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(response.slice(0, split))?.[1];
      if (split >= 0 && length !== undefined && Buffer.byteLength(response.slice(split + 4), 'latin1') >= Number(length) && !opts.keepSending) settle();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
    sock.on('close', settle);
    setTimeout(settle, 10_000);
  });
}

describe('ingress status mapping', () => {
  it('answers 503 INGRESS_NO_HOST with Retry-After when no host is connected', async () => {
    const r = await send('/');
    expect(r.status).toBe(503);
    expect(r.headers['dcdn-error']).toBe('INGRESS_NO_HOST');
    expect(r.headers['retry-after']).toBe('1');
    expect(JSON.parse(r.body).error.code).toBe('INGRESS_NO_HOST');
  });

  it('forwards a response with dcdn-host and dcdn-transport', async () => {
    await addHost('good', ok('hello'));
    const r = await send('/');
    expect(r.status).toBe(200);
    expect(r.body).toBe('hello');
    expect(r.headers['dcdn-host']).toBe('good');
    expect(r.headers['dcdn-transport']).toBe('websocket');
  });

  it('returns 504 INGRESS_HEAD_TIMEOUT when the host never answers, cancels the stream and frees its state', async () => {
    const resets: string[] = [];
    await addHost('silent', (s) => {
      s.onreset = (e) => resets.push(e.code);
    });
    const r = await send('/slow');
    expect(r.status).toBe(504);
    expect(r.headers['dcdn-error']).toBe('INGRESS_HEAD_TIMEOUT');
    await until(() => resets.length === 1);
    expect(resets).toEqual(['INGRESS_HEAD_TIMEOUT']);
    expect(ingress.pool.list()[0]!.inFlight).toBe(0);
    expect(ingress.pool.list()[0]!.session.openStreams).toBe(0);
  });

  it('returns 502 HOST_HANDLER_ERROR when the handler fails', async () => {
    await addHost('thrower', (s) => s.reset('HOST_HANDLER_ERROR', 'TypeError: boom'));
    const r = await send('/');
    expect(r.status).toBe(502);
    expect(r.headers['dcdn-error']).toBe('HOST_HANDLER_ERROR');
    expect(JSON.parse(r.body).error.message).toContain('boom');
  });

  it('does not hold an app failing against the host that ran it', async () => {
    await addHost('app-fails', (s) => s.reset('HOST_HANDLER_TIMEOUT', 'ran too long'));
    for (let i = 0; i < 4; i++) expect((await send('/')).headers['dcdn-error']).toBe('HOST_HANDLER_TIMEOUT');
    expect(ingress.pool.list()[0]!.penalisedUntil).toBe(0);
  });

  it('does not let a host choose a client-facing code it has no business sending', async () => {
    await addHost('liar', (s) => s.reset('INGRESS_BODY_TOO_LARGE', 'not really'));
    const r = await send('/');
    expect(r.status).toBe(502);
    expect(r.headers['dcdn-error']).toBe('INGRESS_BAD_RESPONSE');
  });

  it.each([
    ['a status outside 200-599', 99, [] as Array<[string, string]>],
    ['a header value with CR/LF', 200, [['x-evil', 'a\r\nset-cookie: pwned=1']] as Array<[string, string]>],
    ['a header name that is not a token', 200, [['bad header', 'x']] as Array<[string, string]>],
    ['two content-lengths', 200, [['content-length', '1'], ['content-length', '2']] as Array<[string, string]>],
  ])('returns 502 INGRESS_BAD_RESPONSE for %s and never forwards it', async (_what, status, headers) => {
    await addHost('bad-head', (s) => {
      s.onreset = () => {};
      s.respond({ status, headers }, true);
    });
    const r = await send('/');
    expect(r.status).toBe(502);
    expect(r.headers['dcdn-error']).toBe('INGRESS_BAD_RESPONSE');
    expect(r.headers['x-evil']).toBeUndefined();
    expect(r.headers['set-cookie']).toBeUndefined();
  });

  it('cuts the connection when the body is longer than its content-length', async () => {
    await addHost('long-body', (s) => {
      s.onreset = () => {};
      s.respond({ status: 200, headers: [['content-length', '3']] });
      void s.write(new TextEncoder().encode('abcdef')).then(() => s.end()).catch(() => {});
    });
    const r = await send('/');
    expect(r.aborted).toBe(true);
    expect(r.body.length).toBeLessThanOrEqual(3);
  });

  it('cuts the connection when the host ends short of its content-length', async () => {
    await addHost('short-body', (s) => {
      s.onreset = () => {};
      s.respond({ status: 200, headers: [['content-length', '10']] });
      void s.write(new TextEncoder().encode('abc')).then(() => s.end());
    });
    const r = await send('/');
    expect(r.aborted).toBe(true);
  });

  it('aborts a chunked response whose host dies after the head, so it never looks complete', async () => {
    const host = await addHost('dies-mid-body', (s) => {
      s.onreset = () => {};
      s.respond({ status: 200, headers: [] });
      void s.write(new TextEncoder().encode('partial')).then(() => setTimeout(() => host.channel!.close('crash'), 50));
    });
    const r = await send('/');
    expect(r.status).toBe(200);
    expect(r.aborted).toBe(true);
  });

  it('fails the stream with 502 on a malformed frame and keeps the ingress serving', async () => {
    const host = await addHost('garbage', (s) => {
      s.onreset = () => {};
      // A response head whose status is a string: valid msgpack, invalid frame.
      host.channel!.send(Uint8Array.from([0x95, FrameType.RES_HEAD, s.id, 0xa1, 0x78, 0x90, 0xc3]));
    });
    const r = await send('/');
    expect(r.status).toBe(502);
    expect(r.headers['dcdn-error']).toBe('INGRESS_BAD_RESPONSE');
    net.behave('garbage', ok('recovered'));
    const again = await send('/');
    expect(again.status).toBe(200);
  });

  it('drops frames a host sends for streams it was never given', async () => {
    const host = await addHost('forger', ok());
    host.channel!.send(encodeFrame({ type: FrameType.RES_HEAD, stream: 1001, status: 200, headers: [], endStream: true }));
    await until(() => ingress.pool.list()[0]!.session.stats.unknownStreamFrames === 1);
    expect((await send('/')).status).toBe(200);
  });
});

describe('ingress request checks, before any host is contacted', () => {
  let seen = 0;
  const counting = (s: Stream) => {
    seen++;
    ok()(s);
  };

  it('answers 413 INGRESS_BODY_TOO_LARGE for a declared length over the limit, before the body is sent', async () => {
    await addHost('h', counting);
    seen = 0;
    // Only the head: the answer must come without a byte of the body.
    const early = await upload(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`, Buffer.alloc(0), 0);
    expect(early.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(early.response).toContain('dcdn-error: INGRESS_BODY_TOO_LARGE');
    expect(early.response).toMatch(/\r\nconnection: close\r\n/i);
    expect(JSON.parse(early.response.split('\r\n\r\n')[1]!).error.code).toBe('INGRESS_BODY_TOO_LARGE');
    // A client that keeps sending its 2 MiB reads the same answer, not a reset: the ingress
    // drains what it sent before closing.
    const eager = await upload(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`, Buffer.alloc(64 * 1024), 32);
    expect(eager.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(eager.response).toContain('dcdn-error: INGRESS_BODY_TOO_LARGE');
    // One that does not read until it has sent everything still can: the ingress reads and
    // drops the rest instead of resetting the connection under it.
    const deaf = await upload(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`, Buffer.alloc(64 * 1024), 32, '', { keepSending: true, gapMs: 5 });
    expect(deaf.sentBytes).toBe(2 * 1024 * 1024);
    expect(deaf.error).toBeUndefined();
    expect(deaf.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(seen).toBe(0);
  });

  it('answers 413 when a chunked body grows past the limit, and cancels the host stream', async () => {
    const got: number[] = [];
    const resets: string[] = [];
    await addHost('sink', (s) => {
      s.onreset = (e) => resets.push(e.code);
      s.ondata = (c) => {
        got.push(c.byteLength);
        s.consume(c.byteLength);
      };
    });
    // 64 KiB chunks, up to twice the 1 MiB limit, read while sending.
    const chunk = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(64 * 1024, 'c'), Buffer.from('\r\n')]);
    const r = await upload('POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', chunk, 32, '0\r\n\r\n');
    expect(r.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(r.response).toContain('dcdn-error: INGRESS_BODY_TOO_LARGE');
    // The decision came while the body streamed: the host saw the start of it, never more than the limit.
    expect(r.sentBytes).toBeGreaterThan(1024 * 1024);
    expect(got.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(got.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1024 * 1024);
    await until(() => resets.length === 1);
    expect(resets).toEqual(['INGRESS_BODY_TOO_LARGE']);
    await until(() => ingress.pool.list()[0]!.session.openStreams === 0 && ingress.pool.list()[0]!.inFlight === 0);
    // A client that sends all 2 MiB before reading gets the answer too, not a reset.
    const deaf = await upload('POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', chunk, 32, '0\r\n\r\n', { keepSending: true, gapMs: 5 });
    expect(deaf.error).toBeUndefined();
    expect(deaf.response).toMatch(/^HTTP\/1\.1 413 /);
  });

  it('answers 414 INGRESS_URL_TOO_LONG for a long URL', async () => {
    const r = await send('/' + 'a'.repeat(3000));
    expect(r.status).toBe(414);
    expect(r.headers['dcdn-error']).toBe('INGRESS_URL_TOO_LONG');
  });

  it('answers 431 INGRESS_HEADERS_TOO_LARGE for large headers', async () => {
    const r = await send('/', { headers: { 'x-big': 'b'.repeat(5000) } });
    expect(r.status).toBe(431);
    expect(r.headers['dcdn-error']).toBe('INGRESS_HEADERS_TOO_LARGE');
  });

  it('answers 431 from the parser for headers far over the limit', async () => {
    const out = await raw(`GET / HTTP/1.1\r\nHost: x\r\nX-Huge: ${'h'.repeat(40_000)}\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1\.1 431/);
    expect(out).toContain('dcdn-error: INGRESS_HEADERS_TOO_LARGE');
  });

  it.each([
    ['Content-Length with Transfer-Encoding', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n'],
    ['two different Content-Lengths', 'Content-Length: 5\r\nContent-Length: 6\r\n'],
    ['an obfuscated Transfer-Encoding', 'Transfer-Encoding: xchunked\r\n'],
  ])('answers 400 and closes the connection for %s (request smuggling)', async (_what, headers) => {
    await addHost('h2', counting);
    seen = 0;
    const out = await raw(`POST / HTTP/1.1\r\nHost: x\r\n${headers}\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(out).toMatch(/^HTTP\/1\.1 400/);
    expect(out).toContain('INGRESS_BAD_REQUEST');
    expect(out.match(/HTTP\/1\.1/g)).toHaveLength(1);
    expect(seen).toBe(0);
  });
});

describe('ingress header handling', () => {
  it('strips hop-by-hop headers both ways and sets X-Forwarded-* from the socket', async () => {
    let received: Array<[string, string]> = [];
    await addHost('mirror', (s) => {
      received = s.request.headers;
      s.onreset = () => {};
      s.respond({ status: 200, headers: [['connection', 'x-secret'], ['x-secret', '1'], ['keep-alive', 'timeout=1'], ['dcdn-host', 'spoofed'], ['x-kept', 'yes']] }, true);
    });
    const r = await send('/h', {
      headers: { connection: 'x-private', 'x-private': 'p', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil', 'x-app': 'a', te: 'trailers' },
    });
    const names = received.map(([n]) => n);
    expect(names).not.toContain('connection');
    expect(names).not.toContain('x-private');
    expect(names).not.toContain('te');
    expect(received).toContainEqual(['x-app', 'a']);
    expect(received).toContainEqual(['x-forwarded-for', '127.0.0.1']);
    expect(received).toContainEqual(['x-forwarded-proto', 'http']);
    expect(received.find(([n]) => n === 'x-forwarded-host')?.[1]).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.headers['x-secret']).toBeUndefined();
    expect(r.headers['keep-alive']).not.toBe('timeout=1');
    expect(r.headers['dcdn-host']).toBe('mirror');
    expect(r.headers['x-kept']).toBe('yes');
  });

  it('keeps repeated response headers such as Set-Cookie', async () => {
    await addHost('cookies', (s) => {
      s.onreset = () => {};
      s.respond({ status: 200, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']] }, true);
    });
    expect((await send('/')).headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });
});

describe('ingress with failing hosts', () => {
  it('retries a GET once on another host when the first dies before the head', async () => {
    let deaths = 0;
    const dying: NodeHost = await addHost('dying', () => {
      deaths++;
      dying.channel!.close('crash');
    });
    await addHost('steady', ok('steady'));
    for (let i = 0; i < 4; i++) {
      const r = await send('/');
      expect(r.status).toBe(200);
      expect(r.headers['dcdn-host']).toBe('steady');
    }
    expect(deaths).toBeGreaterThan(0);
  });

  it('retries a GET until a live host answers when two hosts die together (idempotentAttempts 3)', async () => {
    // The live host comes first and holds two responses open, so for the next GET the pool prefers
    // the two idle hosts added after it, which die at their first request: the pool learns of
    // each death only from that request. The GET meets one dead host, then the other, and must
    // still reach the third.
    const held: Stream[] = [];
    await addHost('lives', (s) => {
      if (!s.request.url.endsWith('/hold')) return ok('lives')(s);
      s.onreset = () => {};
      s.respond({ status: 200, headers: [['content-type', 'text/plain']] });
      held.push(s);
    });
    const holds = [send('/hold'), send('/hold')];
    await until(() => held.length === 2, 5000);
    let deaths = 0;
    const die = (host: () => NodeHost) => () => {
      deaths++;
      host().channel!.close('crash');
    };
    const a: NodeHost = await addHost('dies-a', die(() => a));
    const b: NodeHost = await addHost('dies-b', die(() => b));
    const r = await send('/');
    expect(r.status, `${r.status} ${r.headers['dcdn-error']}`).toBe(200);
    expect(r.headers['dcdn-host']).toBe('lives');
    expect(deaths).toBe(2);
    for (const s of held) s.end();
    expect((await Promise.all(holds)).map((h) => [h.status, h.aborted])).toEqual([[200, false], [200, false]]);
  });

  it('does not retry a POST: it answers 502 INGRESS_HOST_LOST', async () => {
    const dying: NodeHost = await addHost('dying-post', (s) => {
      s.ondata = () => {};
      dying.channel!.close('crash');
    });
    const r = await send('/', { method: 'POST', body: 'x' });
    expect(r.status).toBe(502);
    expect(r.headers['dcdn-error']).toBe('INGRESS_HOST_LOST');
  });

  it('streams an upload byte-exact to a host that takes it slowly', async () => {
    await addHost('hasher', (s) => {
      const hash = createHash('sha256');
      let n = 0;
      let releaseAt = 0;
      s.onreset = () => {};
      s.ondata = (c) => {
        hash.update(c);
        n += c.byteLength;
        // No credit back for 300 ms: the rest of the upload piles up in the ingress's socket.
        releaseAt ||= Date.now() + 300;
        setTimeout(() => s.consume(c.byteLength), Math.max(0, releaseAt - Date.now()));
      };
      s.onend = () => {
        s.respond({ status: 200, headers: [] });
        void s.write(new TextEncoder().encode(`${n} ${hash.digest('hex')}`)).then(() => s.end());
      };
    });
    // Just over the host's 256 KiB window (the last bytes wait for credit), then several windows.
    for (const size of [256 * 1024 + 1000, 1000 * 1024 + 7]) {
      const body = randomBytes(size);
      for (const headers of [{ 'content-length': String(body.byteLength) }, { 'transfer-encoding': 'chunked' }] as Array<Record<string, string>>) {
        const r = await send('/hash', { method: 'POST', headers, body });
        expect(r.status).toBe(200);
        expect(r.body).toBe(`${body.byteLength} ${createHash('sha256').update(body).digest('hex')}`);
      }
    }
  });

  it('frees the stream on both sides when the host answers before the request body is done', async () => {
    const host = await addHost('early', (s) => {
      s.onreset = () => {};
      s.ondata = (c) => s.consume(c.byteLength);
      s.respond({ status: 200, headers: [['content-length', '2']] });
      void s.write(new TextEncoder().encode('ok')).then(() => s.end());
    });
    const body = Buffer.alloc(512 * 1024, 'e');
    const r = await new Promise<Result>((resolve, reject) => {
      const req = httpRequest(`${ingress.url}/early`, { method: 'POST', headers: { 'content-length': String(body.byteLength) } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text, aborted: false }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 1024));
      setTimeout(() => req.end(body.subarray(1024)), 200);
    });
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
    const entry = ingress.pool.list()[0]!;
    await until(() => entry.session.openStreams === 0 && entry.inFlight === 0);
    await until(() => host.sessions.at(-1)!.openStreams === 0);
    // The connection is still good for the next request.
    expect((await send('/after')).status).toBe(200);
  });

  it('tells the host when the client goes away, and frees the stream', async () => {
    const resets: string[] = [];
    await addHost('abandoned', (s) => {
      s.onreset = (e) => resets.push(e.code);
      s.respond({ status: 200, headers: [] });
      void s.write(new Uint8Array(10)).catch(() => {});
    });
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${ingress.url}/`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.end();
    });
    await until(() => resets.length === 1);
    expect(resets).toEqual(['PROTO_CANCELLED']);
    await until(() => ingress.pool.list()[0]!.inFlight === 0);
  });

  it('takes a host that keeps breaking protocol out of rotation, but never every host', async () => {
    await addHost('flaky', (s) => s.reset('NOT_A_CODE', 'always'));
    for (let i = 0; i < 3; i++) expect((await send('/')).status).toBe(502);
    const flaky = ingress.pool.list()[0]!;
    expect(flaky.penalisedUntil).toBeGreaterThan(Date.now());
    // Alone, it is still used: a penalised host beats no host.
    expect((await send('/')).headers['dcdn-error']).toBe('INGRESS_BAD_RESPONSE');
    await addHost('fine', ok());
    for (let i = 0; i < 3; i++) expect((await send('/')).headers['dcdn-host']).toBe('fine');
  });
});
