/**
 * `dcdn launch`'s drain on SIGINT/SIGTERM: its tabs are marked draining on signaling (when the
 * launcher has the secret to mint an operator token), so ingresses send them no new requests,
 * then the requests they are serving get up to the grace period to finish before Chromium closes.
 */
import type { LaunchedBrowser } from '../browser-host/index.ts';
import { mintToken } from '../signaling/index.ts';
import type { LogFn } from './log.ts';

/** How often the tabs' in-flight count is read while draining. */
const POLL_MS = 100;

export async function drainTabs(browser: LaunchedBrowser, opts: { signalHttp: string; secret?: string; graceMs: number; log: LogFn }): Promise<void> {
  const deadline = Date.now() + opts.graceMs;
  await browser.withPages(async (pages) => {
    const read = async <T>(expression: string): Promise<T[]> =>
      // A tab that cannot answer (about:blank, crashed, closing) serves nothing: it counts as none.
      (await Promise.all(pages.map((p) => p.evaluate(expression).catch(() => undefined)))).filter((v): v is T => v !== undefined && v !== null);
    const hostIds = await read<string>('window.__dcdnHost?.agent.hostId');
    if (opts.secret) await markDraining(opts.signalHttp, opts.secret, new Set(hostIds), opts.log);
    else opts.log('warn', 'no --secret: the tabs cannot be marked draining, so ingresses may send them new requests until they close');
    let inFlight = 0;
    for (;;) {
      inFlight = (await read<number>('window.__dcdnHost?.runner.stats.inFlight')).reduce((a, b) => a + b, 0);
      if (inFlight === 0 || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (inFlight > 0) opts.log('warn', 'grace period over; closing the tabs under requests in flight', { inFlight });
    else opts.log('info', 'tabs drained', { tabs: hostIds.length });
  });
}

/** Marks the tabs with these host ids draining through the control API. */
async function markDraining(signalHttp: string, secret: string, hostIds: Set<string>, log: LogFn): Promise<void> {
  const headers = { authorization: `Bearer ${mintToken(secret, { role: 'operator', sub: 'launch-drain', ttlSeconds: 300 })}`, 'content-type': 'application/json' };
  try {
    const res = await fetch(`${signalHttp}/v1/hosts`, { headers });
    if (!res.ok) throw new Error(`GET /v1/hosts: HTTP ${res.status}`);
    const { hosts } = (await res.json()) as { hosts: Array<{ id: string; hostId: string }> };
    const ours = hosts.filter((h) => hostIds.has(h.hostId));
    await Promise.all(ours.map((h) => fetch(`${signalHttp}/v1/hosts/${encodeURIComponent(h.id)}/drain`, { method: 'POST', headers, body: '{}' })));
    log('info', 'tabs marked draining', { tabs: ours.length });
  } catch (err) {
    // Signaling gone or refusing: the tabs still finish what they serve; new requests may come.
    log('warn', 'could not mark the tabs draining on signaling', { err: (err as Error).message });
  }
}
