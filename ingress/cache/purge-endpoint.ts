/**
 * `POST /_dcdn/cache/purge?app=APP[&prefix=/PATH]`: drops an app's stored responses on this
 * ingress, for `dcdn cache purge`, which calls it on every ingress signaling knows (as `dcdn
 * tail` reaches them). Operators only: the bearer token must be an operator token, as for
 * `/_dcdn/tail`. Answers `{"app", "prefix", "purged": N}`.
 */
import type { FastifyInstance } from 'fastify';
import { sendError } from '../error-response.ts';
import type { HttpCache } from './http-cache.ts';

export const PURGE_PATH = '/_dcdn/cache/purge';

export function registerCachePurge(app: FastifyInstance, cache: HttpCache, authorize: ((token: string) => boolean) | undefined): void {
  app.post(PURGE_PATH, async (request, reply) => {
    const header = request.headers.authorization;
    const token = typeof header === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(header)?.[1] : undefined;
    if (!authorize || token === undefined || !authorize(token)) {
      reply.hijack();
      return sendError(reply.raw, 'INGRESS_UNAUTHORIZED', authorize ? 'send an operator token as Authorization: Bearer' : 'this ingress was started without the network secret, so it cannot check operator tokens');
    }
    const query = request.query as Record<string, unknown>;
    const target = typeof query.app === 'string' ? query.app : '';
    const prefix = typeof query.prefix === 'string' ? query.prefix : undefined;
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(target) || (prefix !== undefined && !prefix.startsWith('/'))) {
      reply.hijack();
      return sendError(reply.raw, 'INGRESS_BAD_REQUEST', 'purge takes ?app=NAME and an optional ?prefix=/PATH');
    }
    const purged = cache.purge(target, prefix);
    reply.header('cache-control', 'no-store');
    return { app: target, prefix: prefix ?? null, purged };
  });
}
