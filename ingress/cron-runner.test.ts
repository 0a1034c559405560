/**
 * The ingress's side of a scheduled run (cron-runner.ts) over a real session on the in-memory
 * channel pair, the host side answering as a tab would: the head it sends, each outcome it
 * reports, the hosts it may not use, and its timeout (fake timers).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryChannelPair, DEFAULT_APP_CONFIG, SCHEDULED_HEADERS, SCHEDULED_METHOD, Session, type AppRef, type Stream } from '../protocol/index.ts';
import { HostPool } from './host-pool.ts';
import { runScheduled } from './cron-runner.ts';

const app: AppRef = { name: 'jobs', version: 1, sha256: 'x', config: { ...DEFAULT_APP_CONFIG } };
const event = { app: 'jobs', cron: '*/5 * * * *', scheduledTime: 1_767_225_900_000 };
const sessions: Session[] = [];

afterEach(() => {
  for (const s of sessions.splice(0)) s.close();
  vi.useRealTimers();
});

async function hostPool(serve: (stream: Stream) => void, traits?: { volunteer: boolean }): Promise<HostPool> {
  const [a, b] = createMemoryChannelPair();
  const ingress = new Session(a, { role: 'client' });
  const host = new Session(b, { role: 'server' });
  sessions.push(ingress, host);
  host.onstream = serve;
  await Promise.all([ingress.ready, host.ready]);
  const pool = new HostPool();
  pool.add({ id: 'h1', name: 'tab-1', session: ingress, transport: 'websocket', info: {}, ...(traits ? { traits: { volunteer: traits.volunteer, apps: null, capabilities: [], draining: false } } : {}) });
  return pool;
}

describe('runScheduled', () => {
  it('sends the DCDN-SCHEDULED head with the cron and the tick, and reports a 204 as ok', async () => {
    let seen: Stream['request'] | null = null;
    const pool = await hostPool((s) => {
      seen = s.request;
      s.respond({ status: 204, headers: [] }, true);
    });
    expect(await runScheduled(pool, app, event)).toMatchObject({ ok: true, code: '', host: 'tab-1' });
    expect(seen).toMatchObject({ method: SCHEDULED_METHOD, app: 'jobs', headers: [[SCHEDULED_HEADERS.cron, '*/5 * * * *'], [SCHEDULED_HEADERS.scheduledTime, String(event.scheduledTime)]] });
    expect(pool.get('h1')!.inFlight).toBe(0);
  });

  it("reports the handler's error as the tab resets the stream with it", async () => {
    const pool = await hostPool((s) => s.reset('HOST_HANDLER_ERROR', 'Error: boom\n    at scheduled (jobs.ts:3:9)'));
    expect(await runScheduled(pool, app, event)).toMatchObject({ ok: false, code: 'HOST_HANDLER_ERROR', error: 'Error: boom\n    at scheduled (jobs.ts:3:9)', host: 'tab-1' });
  });

  it('reports a host that answers like a fetch handler as HOST_BAD_HANDLER_RESPONSE', async () => {
    const pool = await hostPool((s) => s.respond({ status: 200, headers: [] }, true));
    expect(await runScheduled(pool, app, event)).toMatchObject({ ok: false, code: 'HOST_BAD_HANDLER_RESPONSE' });
  });

  it('answers INGRESS_NO_HOST without a host that may run the app, and INGRESS_UNKNOWN_APP for an app it does not know', async () => {
    const pool = await hostPool(() => expect.unreachable('a volunteer must not get it'), { volunteer: true });
    expect(await runScheduled(pool, app, event)).toMatchObject({ ok: false, code: 'INGRESS_NO_HOST', host: '' });
    expect(await runScheduled(pool, undefined, event)).toMatchObject({ ok: false, code: 'INGRESS_UNKNOWN_APP' });
  });

  it('gives up after its timeout with CRON_TIMEOUT and resets the stream', async () => {
    let reset = '';
    const pool = await hostPool((s) => {
      s.onreset = (err) => (reset = err.code);
    });
    vi.useFakeTimers();
    const pending = runScheduled(pool, app, event, 5000);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await pending).toMatchObject({ ok: false, code: 'CRON_TIMEOUT', host: 'tab-1' });
    await vi.advanceTimersByTimeAsync(100); // the reset crosses the channel
    expect(reset).toBe('CRON_TIMEOUT');
    expect(pool.get('h1')!.inFlight).toBe(0);
  });
});
