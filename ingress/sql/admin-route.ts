/**
 * `POST /_dcdn/sql/APP/BINDING` on the ingress: operators' SQL (`dcdn sql`, migrations, export
 * and import) run by the ingress's own store, with an operator token. The embedded store can
 * only be reached this way while the ingress runs: PGlite is one process's (two processes on one
 * data directory would corrupt it). The body and answer are the SQL wire's JSON (protocol/sql-wire.ts).
 */
import type { FastifyInstance } from 'fastify';
import { errorCodeOf, ERRORS } from '../../protocol/index.ts';
import { sendError } from '../error-response.ts';
import type { SqlService } from './service.ts';

export function registerSqlAdmin(app: FastifyInstance, service: SqlService | null, authorize: ((token: string) => boolean) | undefined): void {
  app.post('/_dcdn/sql/:app/:binding', async (request, reply) => {
    const header = request.headers.authorization;
    const token = typeof header === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(header)?.[1] : undefined;
    reply.hijack();
    if (!authorize || token === undefined || !authorize(token)) {
      return sendError(reply.raw, 'INGRESS_UNAUTHORIZED', authorize ? 'send an operator token as Authorization: Bearer' : 'this ingress was started without the network secret, so it cannot check operator tokens');
    }
    if (!service) return sendError(reply.raw, 'SQL_NOT_CONFIGURED', 'D1_ERROR: this ingress has no SQL store');
    const { app: name, binding } = request.params as { app: string; binding: string };
    try {
      const call = await service.parse(request.raw);
      const results = await service.runAsOperator(name, binding, call);
      const body = JSON.stringify({ results });
      reply.raw.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      reply.raw.end(body);
    } catch (err) {
      const code = errorCodeOf(err) ?? 'SQL_STORE_UNAVAILABLE';
      sendError(reply.raw, code, (err as Error).message ?? ERRORS[code].summary);
    }
  });
}
