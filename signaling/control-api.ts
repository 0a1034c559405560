import { randomUUID } from 'node:crypto';
import { build } from 'esbuild';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DcdnError, errorCodeOf } from '../protocol/index.ts';
import { parseAppConfig, type AppConfig } from '../protocol/index.ts';
import { checkName, MAX_BUNDLE_BYTES, type AppManifestEntry } from './app-store.ts';
import type { ControlCache } from './control-cache.ts';
import type { ControlStore, CronRun } from './control-store.ts';
import { checkCrons } from './cron-schedule.ts';
import { waitForPropagation, type Propagation } from './deploy-barrier.ts';
import type { AppRef } from '../protocol/index.ts';
import { MAX_ROLLOUT_WAIT_MS, rolloutOf, type HostReport, type Rollout } from './rollout.ts';
import type { CheckOutcome } from './signaling-hub.ts';
import { SignalingError } from '../protocol/index.ts';
import { bearerToken, sendError } from './http-auth.ts';
import { verifyToken, type Claims, type Role } from './token.ts';
import { mayRun, trustFromScope } from '../protocol/index.ts';

/**
 * The control API: deploy, list, roll back and delete apps, and manage their secrets, with an
 * operator token; hosts fetch the code of the versions they run with their host token.
 *
 * | method and path | who | what |
 * |---|---|---|
 * | GET /v1/apps | operator | apps, versions, secret names, and the hosts that report each loaded |
 * | PUT /v1/apps/:name | operator | `{code, message?, config?, check?}`: a new version, loaded on a host first (unless `check: false`), then made active (config: app-config.ts) |
 * | POST /v1/apps/:name/rollback | operator | `{to?}`: activate an earlier version |
 * | DELETE /v1/apps/:name | operator | remove the app and all its versions |
 * | PUT /v1/apps/:name/secrets/:secret | operator | `{value}` |
 * | DELETE /v1/apps/:name/secrets/:secret | operator | |
 * | GET /v1/apps/:name/rollout?wait=MS | operator | which connected hosts serve the active deployment (rollout.ts `Rollout`); with `wait`, answers once every host is live or failed, or after MS (at most {@link MAX_ROLLOUT_WAIT_MS}) |
 * | GET /v1/apps/:name/versions/:version/code | host, operator | the bundle (ES module) |
 * | GET /v1/apps/:name/env | host (not operators) | secret values, for the host's `env` (none for volunteers) |
 * | GET /v1/checks/:id | host (not volunteers) | a candidate being checked: `{app, code, env, kv}` |
 *
 * Writes go to the control store and answer once every live signaling node applied them (or
 * after `deployBarrierMs`), with `propagated` (deploy-barrier.ts); with the store down they answer
 * 503 APP_STORE_UNAVAILABLE. Reads that serve hosts (manifest, code) come from the node's
 * ControlCache and go on while the store is down; `/env` reads the store (never cached).
 */
export interface ControlApiOptions {
  /**
   * Loads a candidate on connected hosts before it goes live (SignalingHub.checkApp); the
   * candidate is served at `/v1/checks/:id` meanwhile. Absent: deploys are not checked.
   */
  check?: (id: string, app: string, config: AppConfig, timeoutMs: number) => Promise<CheckOutcome>;
  /** How long a deploy waits for a host to load the candidate. Default {@link DEFAULT_APP_CHECK_TIMEOUT_MS}. */
  checkTimeoutMs?: number;
  /** What each connected host reports it has loaded, per app (SignalingHub.appHosts). */
  appHosts?: () => Map<string, Array<{ host: string; version: number; state: string }>>;
  /** The hosts an app's rollout waits for, and what they report (SignalingHub.hostReports). */
  hostReports?: (app: AppRef) => HostReport[];
  /** Subscribes to hosts' reports, joins and leaves (SignalingHub.onHostChange). */
  onHostChange?: (listener: () => void) => () => void;
  /**
   * Where candidates wait while they are checked, so `/v1/checks/:id` answers on every
   * signaling node (cluster/types.ts EphemeralStore). Default: this process's memory.
   */
  candidates?: { putCandidate(id: string, c: unknown, ttlMs: number): Promise<void>; getCandidate(id: string): Promise<unknown | null> };
  /** The live signaling nodes and the control version each applied (presence.nodes()); absent: this node alone. */
  clusterNodes?: () => Promise<Array<{ id: string; cv: number }>>;
  /** Runs an app's scheduled handler once now (`dcdn cron trigger`, cron-scheduler.ts); absent: 404 for the route. */
  cronTrigger?: (app: AppManifestEntry) => Promise<CronRun>;
  /** How long a write waits for every node to apply it. Default DEFAULT_DEPLOY_BARRIER_MS (deploy-barrier.ts). */
  deployBarrierMs?: number;
}

/** The control plane as handlers see it: the store to write and read uncached, the cache to serve from. */
export interface ControlPlane {
  store: ControlStore;
  cache: ControlCache;
}

/** A candidate outlives its check by this much (a tab may still be fetching it). */
const CANDIDATE_TTL_MARGIN_MS = 5000;

/** A new version must load on a host within this time, or the deploy fails with APP_LOAD_FAILED. */
export const DEFAULT_APP_CHECK_TIMEOUT_MS = 15_000;

interface Candidate {
  app: string;
  code: string;
  kv: string[];
  vars: Record<string, string>;
}

export function registerControlApi(app: FastifyInstance, { store, cache }: ControlPlane, secret: string, options: ControlApiOptions = {}): void {
  const checkTimeoutMs = options.checkTimeoutMs ?? DEFAULT_APP_CHECK_TIMEOUT_MS;
  /** Candidates being checked, by unguessable id; each lives only while its deploy waits. */
  const local = new Map<string, Candidate>();
  const candidates = options.candidates ?? {
    async putCandidate(id: string, c: unknown) {
      local.set(id, c as Candidate);
    },
    async getCandidate(id: string) {
      return local.get(id) ?? null;
    },
  };
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
  /** Secrets go to hosts only: an operator sets them but never reads them back. */
  const hostOnly = auth(['host']);

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
  // A store error in any handler of this scope answers with its code (503 APP_STORE_UNAVAILABLE), not a 500.
  app.setErrorHandler((err: Error, _req, reply) => {
    const code = errorCodeOf(err);
    if (!code) return reply.send(err);
    return sendError(reply, code, err.message);
  });
  /** After a write: waits until every live node applied it (deploy-barrier.ts). */
  const propagate = async (): Promise<Propagation> => {
    const atVersion = await store.version().catch(() => cache.version);
    return waitForPropagation(atVersion, { cache, clusterNodes: options.clusterNodes, ...(options.deployBarrierMs !== undefined ? { timeoutMs: options.deployBarrierMs } : {}) });
  };

  app.get('/v1/apps', { preHandler: operator }, async (_req, reply) =>
    answer(reply, 200, async () => {
      const hosts = options.appHosts?.() ?? new Map();
      const cron = new Map((await store.cronStates()).map((c) => [c.app, c.lastRun]));
      return {
        apps: (await store.list()).map((a) => {
          // The schedule is the active version's (a rollback restores its version's schedule).
          const schedule = a.versions.find((v) => v.version === a.activeVersion)?.config.crons ?? [];
          return { ...a, hosts: hosts.get(a.name) ?? [], cron: { schedule, lastRun: cron.get(a.name) ?? null } };
        }),
      };
    }),
  );

  app.put<{ Params: Params; Body: { code?: unknown; message?: unknown; config?: unknown; check?: unknown } }>(
    '/v1/apps/:name',
    { preHandler: operator, bodyLimit: MAX_BUNDLE_BYTES * 2 },
    async (req, reply) =>
      answer(reply, 201, async () => {
        const { code, message, config, check } = req.body ?? {};
        const name = req.params.name;
        checkName(name);
        if (typeof code !== 'string') throw new DcdnError('APP_BAD_BUNDLE', 'the body must be JSON {"code": "<ES module source>"}');
        // A deploy that says nothing of crons keeps the live version's schedule (wrangler keeps
        // triggers when its config has no crons key); `crons: []` clears it.
        const keep = typeof config === 'object' && config !== null && !Array.isArray(config) && !Object.hasOwn(config, 'crons');
        const live = keep ? cache.manifest().find((a) => a.name === name)?.config.crons : undefined;
        const appConfig = parseAppConfig(live?.length ? { ...(config as object), crons: live } : config);
        checkCrons(appConfig.crons ?? []);
        await checkBundle(code);
        const outcome = check === false || !options.check ? null : await loadOnHost(name, code, appConfig);
        const deployed = await store.deploy(name, code, typeof message === 'string' ? message : '', appConfig);
        const propagated = await propagate();
        req.log.info({ app: name, version: deployed.version, check: outcome ?? 'off', propagated }, 'app deployed');
        return { ...deployed, check: outcome ?? { status: 'off' }, propagated };
      }),
  );

  /**
   * Has a host load the candidate (its module evaluated, its default export checked) before it
   * goes live, so a bundle that throws on load never replaces a working version.
   *
   * @throws {DcdnError} APP_LOAD_FAILED when the host reports an error or none answers in time.
   */
  async function loadOnHost(name: string, code: string, config: AppConfig): Promise<CheckOutcome> {
    const id = randomUUID();
    await candidates.putCandidate(id, { app: name, code, kv: config.kv, vars: config.vars } satisfies Candidate, checkTimeoutMs + CANDIDATE_TTL_MARGIN_MS);
    try {
      const outcome = await options.check!(id, name, config, checkTimeoutMs);
      if (outcome.status === 'failed') throw new DcdnError('APP_LOAD_FAILED', `host ${outcome.host} could not load it: ${outcome.error}`);
      if (outcome.status === 'timeout') throw new DcdnError('APP_LOAD_FAILED', `no host loaded it within ${checkTimeoutMs} ms (asked: ${outcome.hosts.join(', ')})`);
      return outcome;
    } finally {
      local.delete(id);
    }
  }

  app.post<{ Params: Params; Body: { to?: unknown } }>('/v1/apps/:name/rollback', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, async () => {
      const to = req.body?.to;
      if (to !== undefined && !(Number.isInteger(to) && (to as number) > 0)) throw new DcdnError('APP_VERSION_NOT_FOUND', '"to" must be a version number');
      const version = await store.rollback(req.params.name, to as number | undefined);
      return { ...version, propagated: await propagate() };
    }),
  );

  /**
   * How far the active deployment of an app has got. Deploys, rollbacks and secret changes
   * answer once they are stored; hosts then load the new deployment beside the old one and
   * switch. `dcdn deploy` and friends call this with `wait` so that they return only once every
   * connected host serves it (or one failed, or the wait ran out).
   */
  app.get<{ Params: Params; Querystring: { wait?: string } }>('/v1/apps/:name/rollout', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, async () => {
      const name = req.params.name;
      checkName(name);
      const waitMs = req.query.wait === undefined ? 0 : Number(req.query.wait);
      if (!/^\d{1,9}$/.test(req.query.wait ?? '0')) throw new DcdnError('APP_BAD_QUERY', `wait must be a whole number of milliseconds, got ${JSON.stringify(req.query.wait)}`);
      const started = Date.now();
      const rollout = await waitForRollout(name, Math.min(waitMs, MAX_ROLLOUT_WAIT_MS), reply.raw);
      return { ...rollout, waitedMs: Date.now() - started };
    }),
  );

  function currentRollout(name: string): Rollout {
    const entry = cache.manifest().find((a) => a.name === name);
    if (!entry) throw new DcdnError('APP_NOT_FOUND', `no app named ${name}`);
    return rolloutOf(entry, options.hostReports?.(entry) ?? []);
  }

  /** The rollout once it settles, the client goes away, or `waitMs` passes, whichever is first. */
  function waitForRollout(name: string, waitMs: number, response: NodeJS.EventEmitter): Promise<Rollout> {
    let rollout = currentRollout(name);
    if (rollout.settled || waitMs === 0 || !options.onHostChange) return Promise.resolve(rollout);
    return new Promise((resolve, reject) => {
      const finish = (error?: unknown) => {
        clearTimeout(timer);
        off();
        response.off('close', onClose);
        if (error) reject(error);
        else resolve(rollout);
      };
      const onClose = () => finish();
      const off = options.onHostChange!(() => {
        try {
          rollout = currentRollout(name);
        } catch (err) {
          return finish(err); // deleted meanwhile
        }
        if (rollout.settled) finish();
      });
      const timer = setTimeout(() => finish(), waitMs);
      // The response closes early only when the client went away: stop waiting for it.
      response.once('close', onClose);
    });
  }

  /** Runs the app's scheduled handler once now and answers with how it went (the run is also its last run). */
  app.post<{ Params: Params }>('/v1/apps/:name/cron/trigger', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, async () => {
      checkName(req.params.name);
      const entry = cache.manifest().find((a) => a.name === req.params.name);
      if (!entry) throw new DcdnError('APP_NOT_FOUND', `no app named ${req.params.name}`);
      if (!options.cronTrigger) throw new DcdnError('CRON_NO_INGRESS', 'this signaling node runs no cron scheduler');
      const run = await options.cronTrigger(entry);
      req.log.info({ app: entry.name, ok: run.ok, code: run.code, host: run.host }, 'cron triggered');
      return { app: entry.name, run };
    }),
  );

  app.delete<{ Params: Params }>('/v1/apps/:name', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, async () => {
      await store.delete(req.params.name);
      return { ok: true, propagated: await propagate() };
    }),
  );

  app.put<{ Params: Params; Body: { value?: unknown } }>('/v1/apps/:name/secrets/:secret', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, async () => {
      const value = req.body?.value;
      if (typeof value !== 'string') throw new DcdnError('APP_BAD_SECRET', 'the body must be JSON {"value": "..."}');
      await store.putSecret(req.params.name, req.params.secret, value);
      return { ok: true, propagated: await propagate() };
    }),
  );

  app.delete<{ Params: Params }>('/v1/apps/:name/secrets/:secret', { preHandler: operator }, async (req, reply) =>
    answer(reply, 200, async () => {
      if (!(await store.deleteSecret(req.params.name, req.params.secret))) throw new DcdnError('APP_BAD_SECRET', `no secret ${req.params.secret}`);
      return { ok: true, propagated: await propagate() };
    }),
  );

  /** A volunteer's token reaches only the apps it may run (trust.ts); the same 404 as for none. */
  const hidden = (req: FastifyRequest & { params: Params }) => {
    const claims = claimsOf.get(req);
    const trust = claims?.role === 'host' ? trustFromScope(claims.scope) : null;
    if (!trust?.volunteer) return false;
    const entry = cache.manifest().find((a) => a.name === req.params.name);
    return !entry || !mayRun(trust, entry);
  };

  app.get<{ Params: Params }>('/v1/apps/:name/versions/:version/code', { preHandler: host }, async (req, reply) => {
    if (hidden(req)) return sendError(reply, 'APP_NOT_FOUND', `no app named ${req.params.name}`);
    const found = await cache.code(req.params.name, Number(req.params.version));
    if (!found) return sendError(reply, 'APP_VERSION_NOT_FOUND', `${req.params.name} has no version ${req.params.version}`);
    // Versions never change, so a host may cache them forever by hash.
    return reply.type('text/javascript; charset=utf-8').header('etag', `"${found.sha256}"`).header('cache-control', 'private, max-age=31536000, immutable').send(found.code);
  });

  app.get<{ Params: { id: string } }>('/v1/checks/:id', { preHandler: hostOnly }, async (req, reply) => {
    const claims = claimsOf.get(req);
    const candidate = (await candidates.getCandidate(req.params.id)) as Candidate | null;
    // Volunteers are never asked to check, and must not see unreleased code.
    if (!candidate || (claims?.role === 'host' && trustFromScope(claims.scope).volunteer)) return sendError(reply, 'APP_NOT_FOUND', 'no such check (it ended)');
    const env = { ...candidate.vars, ...(cache.manifest().some((a) => a.name === candidate.app) ? await store.secrets(candidate.app) : {}) };
    return reply.header('cache-control', 'no-store').send({ app: candidate.app, code: candidate.code, env, kv: candidate.kv });
  });

  app.get<{ Params: Params }>('/v1/apps/:name/env', { preHandler: hostOnly }, async (req, reply) =>
    answer(reply, 200, async () => {
      if (!cache.manifest().some((a) => a.name === req.params.name) || hidden(req)) throw new DcdnError('APP_NOT_FOUND', `no app named ${req.params.name}`);
      // Volunteers' hosts are nobody's to vouch for: they never get an app's secrets.
      const claims = claimsOf.get(req);
      if (claims?.role === 'host' && trustFromScope(claims.scope).volunteer) return { env: {} };
      // From the store, never a cache: a host that heard a new manifest must not get old secrets.
      return { env: await store.secrets(req.params.name) };
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
