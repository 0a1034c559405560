import type { FastifyReply, FastifyRequest } from 'fastify';
import { ERRORS, type ErrorCode } from '../protocol/index.ts';
import { SignalingError } from '../protocol/index.ts';

/**
 * The token of an HTTP request: `Authorization: Bearer <token>`, or `?token=` (browsers cannot
 * set headers on a WebSocket). Throws SIG_TOKEN_MISSING / SIG_TOKEN_INVALID.
 */
export function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (typeof header === 'string' && header.length > 0) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (match === null) throw new SignalingError('SIG_TOKEN_INVALID', 'Authorization must be "Bearer <token>"');
    return match[1]!;
  }
  const query = request.query as Record<string, unknown> | undefined;
  const token = query !== undefined && Object.hasOwn(query, 'token') ? query['token'] : undefined;
  if (token === undefined || token === '') throw new SignalingError('SIG_TOKEN_MISSING');
  // Repeated ?token= parses as an array; verifyToken rejects anything but a string.
  return token as string;
}

/** Answers with one of the registry's codes: its status, `dcdn-error` and a JSON body. */
export function sendError(reply: FastifyReply, code: ErrorCode, message: string): FastifyReply {
  const status = ERRORS[code].status;
  return reply.code(status).header('dcdn-error', code).header('cache-control', 'no-store').send({ error: { code, message } });
}

