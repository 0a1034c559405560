import { build } from 'esbuild';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DcdnError, errorCodeOf } from '../protocol/errors.ts';
import { parseAppConfig } from './app-config.ts';
import { MAX_BUNDLE_BYTES, type AppStore } from './app-store.ts';
import { SignalingError } from './errors.ts';
import { bearerToken, sendError } from './http-auth.ts';
import { verifyToken, type Claims, type Role } from './token.ts';
import { mayRun, trustFromScope } from './trust.ts';

/**
 * The control API: deploy, list, roll back and delete apps, and manage their secrets, with an
 * operator token; hosts fetch the code of the versions they run with their host token.
 *
 * | method and path | who | what |
 * |---|---|---|
 * | GET /v1/apps | operator | apps, versions, secret names |
 * | PUT /v1/apps/:name | operator | `{code, message?, config?}`: a new version, made active (config: app-config.ts) |
 * | POST /v1/apps/:name/rollback | operator | `{to?}`: activate an earlier version |
 * | DELETE /v1/apps/:name | operator | remove the app and all its versions |
 * | PUT /v1/apps/:name/secrets/:secret | operator | `{value}` |
 * | DELETE /v1/apps/:name/secrets/:secret | operator | |
 * | GET /v1/apps/:name/versions/:version/code | host, operator | the bundle (ES module) |
 * | GET /v1/apps/:name/env | host | secret values, for the host's `env` (none for volunteers) |
 */
export function registerControlApi(app: FastifyInstance, store: AppStore, secret: string): void {
  const claimsOf = new WeakMap<FastifyRequest, Claims>();
  const auth = (roles: Role[]) => async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      claimsOf.set(request, verifyToken(secret, bearerToken(request), roles));
    } catch (err) {
      if (!(err instanceof SignalingError)) throw err;
      return sendError(reply, err.code, err.message);
    }
  };
  const operator = auth(['operator']);
  const host = auth(['host', 'operator']);

  /** Runs a store call; its DcdnErrors become their status and code. */
  const answer = async (reply: FastifyReply, status: number, run: () => unknown | Promise<unknown>) => {
    try {
      const body = await run();
      return reply.code(status).header('cache-control', 'no-store').send(body ?? { ok: true });
    } catch (err) {
      const code = errorCodeOf(err);
      if (!code) throw err;
      return sendError(reply, code, (err as Error).message);
    }
  };
  type Params = { name: string; secret: string; version: string };

  app.get('/v1/apps', { preHandler: operator }, async (_req, reply) => answer(reply, 200, () => ({ apps: store.list() })));

  app.put<{ Params: Params; Body: { code?: unknown; message?: unknown; config?: unknown } }>(
    '/v1/apps/:name',
    { preHandler: operator, bodyLimit: MAX_BUNDLE_BYTES * 2 },
    async (req, reply) =>
      answer(reply, 201, async () => {
        const { code, message, config } = req.body ?? {};
        if (typeof code !== 'string') throw new DcdnError('APP_BAD_BUNDLE', 'the body must be JSON {"code": "<ES module source>"}');
        const options = parseAppConfig(config);
        await checkBundle(code);
        return store.deploy(req.params.name, code, typeof message === 'string' ? message : '', options);
      }),
  );

  app.post<{ Params: Params; Body: { to?: unknown } }>('/v1/apps/:name/rollback', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, () => {
      const to = req.body?.to;
      if (to !== undefined && !(Number.isInteger(to) && (to as number) > 0)) throw new DcdnError('APP_VERSION_NOT_FOUND', '"to" must be a version number');
      return store.rollback(req.params.name, to as number | undefined);
    }),
  );

  app.delete<{ Params: Params }>('/v1/apps/:name', { preHandler: operator }, async (req, reply) => answer(reply, 200, () => store.delete(req.params.name)));

  app.put<{ Params: Params; Body: { value?: unknown } }>('/v1/apps/:name/secrets/:secret', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, () => {
      const value = req.body?.value;
      if (typeof value !== 'string') throw new DcdnError('APP_BAD_SECRET', 'the body must be JSON {"value": "..."}');
      store.putSecret(req.params.name, req.params.secret, value);
    }),
  );

  app.delete<{ Params: Params }>('/v1/apps/:name/secrets/:secret', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, () => {
      if (!store.deleteSecret(req.params.name, req.params.secret)) throw new DcdnError('APP_BAD_SECRET', `no secret ${req.params.secret}`);
    }),
  );

  /** A volunteer's token reaches only the apps it may run (trust.ts); the same 404 as for none. */
  const hidden = (req: FastifyRequest & { params: Params }) => {
    const claims = claimsOf.get(req);
    const trust = claims?.role === 'host' ? trustFromScope(claims.scope) : null;
    if (!trust?.volunteer) return false;
    const entry = store.manifest().find((a) => a.name === req.params.name);
    return !entry || !mayRun(trust, entry);
  };

  app.get<{ Params: Params }>('/v1/apps/:name/versions/:version/code', { preHandler: host }, async (req, reply) => {
    if (hidden(req)) return sendError(reply, 'APP_NOT_FOUND', `no app named ${req.params.name}`);
    const found = store.code(req.params.name, Number(req.params.version));
    if (!found) return sendError(reply, 'APP_VERSION_NOT_FOUND', `${req.params.name} has no version ${req.params.version}`);
    // Versions never change, so a host may cache them forever by hash.
    return reply.type('text/javascript; charset=utf-8').header('etag', `"${found.sha256}"`).header('cache-control', 'private, max-age=31536000, immutable').send(found.code);
  });

  app.get<{ Params: Params }>('/v1/apps/:name/env', { preHandler: host }, async (req, reply) =>
    answer(reply, 200, () => {
      if (!store.manifest().some((a) => a.name === req.params.name) || hidden(req)) throw new DcdnError('APP_NOT_FOUND', `no app named ${req.params.name}`);
      // Volunteers' hosts are nobody's to vouch for: they never get an app's secrets.
      const claims = claimsOf.get(req);
      if (claims?.role === 'host' && trustFromScope(claims.scope).volunteer) return { env: {} };
      return { env: store.secrets(req.params.name) };
    }),
  );
}

/**
 * Checks that a bundle is one self-contained ES module with a default export, without running
 * it (the control plane never executes user code). esbuild parses it and reports its exports
 * and imports.
 */
export async function checkBundle(code: string): Promise<void> {
  const size = Buffer.byteLength(code);
  if (size === 0 || size > MAX_BUNDLE_BYTES) throw new DcdnError('APP_BAD_BUNDLE', `the bundle is ${size} bytes; it must be 1 to ${MAX_BUNDLE_BYTES}`);
  let result;
  try {
    result = await build({ stdin: { contents: code, loader: 'js' }, format: 'esm', bundle: false, write: false, metafile: true, logLevel: 'silent' });
  } catch (err) {
    const first = (err as { errors?: Array<{ text: string; location?: { line: number; column: number } }> }).errors?.[0];
    throw new DcdnError('APP_BAD_BUNDLE', first ? `not valid JavaScript: ${first.text}${first.location ? ` (line ${first.location.line}:${first.location.column})` : ''}` : 'not valid JavaScript');
  }
  const output = Object.values(result.metafile.outputs)[0];
  if (!output?.exports.includes('default')) throw new DcdnError('APP_BAD_BUNDLE', 'the module has no default export (export default { fetch(request, env, ctx) { ... } })');
  if (output.imports.length > 0) {
    throw new DcdnError('APP_BAD_BUNDLE', `the bundle imports ${output.imports.map((i) => i.path).slice(0, 3).join(', ')}; bundle dependencies in (dcdn deploy does)`);
  }
}
