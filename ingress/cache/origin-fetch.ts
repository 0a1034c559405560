/**
 * Asks an app's handler for a response with no client waiting: the background revalidation of
 * stale-while-revalidate. It goes to a host the way a request would (the pool's pick, the same
 * eligibility and withheld headers), once, with the proxy's head and idle timeouts; whatever
 * fails is reported as a rejection and the stale response stays in use.
 */
import { DcdnError, streamBody, type HeaderList } from '../../protocol/index.ts';
import type { AppRouter } from '../app-router.ts';
import type { HostPool } from '../host-pool.ts';
import { mayServe, VOLUNTEER_WITHHELD_HEADERS } from '../host-traits.ts';
import type { OriginAnswer, OriginFetch } from './http-cache.ts';

export function originFetch(pool: HostPool, router: AppRouter, timeouts: { headTimeoutMs: number; idleTimeoutMs: number }): OriginFetch {
  return ({ app, url, headers }) =>
    new Promise<OriginAnswer>((resolve, reject) => {
      const ref = router.ref(app);
      const picked = pool.pick(new Set(), Date.now(), (h) => mayServe(h.traits, ref));
      if ('error' in picked) return reject(new DcdnError(picked.error, 'no host for a background revalidation'));
      const host = picked.host;
      const sent = host.traits.volunteer ? headers.filter(([n]) => !VOLUNTEER_WITHHELD_HEADERS.has(n.toLowerCase())) : headers;
      let stream: ReturnType<typeof host.session.open>;
      try {
        stream = host.session.open({ method: 'GET', url, headers: sent, app }, true);
      } catch (err) {
        return reject(err as Error);
      }
      host.inFlight++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        host.inFlight--;
      };
      const timer = setTimeout(() => {
        stream.reset('INGRESS_HEAD_TIMEOUT', 'no response head in time');
        release();
        reject(new DcdnError('INGRESS_HEAD_TIMEOUT', 'the revalidation got no head in time'));
      }, timeouts.headTimeoutMs);
      stream.onreset = (err) => {
        clearTimeout(timer);
        release();
        reject(new DcdnError('INGRESS_HOST_LOST', `${err.code} ${err.message}`));
      };
      stream.onhead = (head) => {
        clearTimeout(timer);
        pool.reportSuccess(host, app);
        const body = streamBody(stream);
        resolve({
          status: head.status,
          headers: head.headers,
          body: idle(body, timeouts.idleTimeoutMs, () => stream.reset('INGRESS_IDLE_TIMEOUT', 'body stalled'), release),
          cancel: () => {
            release();
            if (!stream.closed) stream.reset('PROTO_CANCELLED', 'the cache does not need this body');
          },
        });
      };
    });
}

/** The body, failing when no chunk comes for `ms`; `done` once it is over either way. */
async function* idle(body: AsyncIterableIterator<Uint8Array>, ms: number, onTimeout: () => void, done: () => void): AsyncIterable<Uint8Array> {
  try {
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const next = await Promise.race([
        body.next(),
        new Promise<never>((_r, reject) => {
          timer = setTimeout(() => {
            onTimeout();
            reject(new DcdnError('INGRESS_IDLE_TIMEOUT', 'the revalidation body stalled'));
          }, ms);
        }),
      ]).finally(() => clearTimeout(timer));
      if (next.done) return;
      yield next.value;
    }
  } finally {
    done();
  }
}
