/**
 * The operator's view of hosts, and the volunteers' way in:
 *
 * | method and path | who | what |
 * |---|---|---|
 * | GET /v1/hosts | operator | connected hosts of the whole cluster: trust, scope, address, capabilities, draining, node, region |
 * | POST /v1/hosts/:id/drain | operator | `{draining?}` (default true): no new requests; false resumes (any node: relayed to the host's) |
 * | POST /v1/hosts/:id/ban | operator | `{reason?, invite?, address?}`: bans the tab (and its invite, its address), disconnects it |
 * | GET /v1/bans | operator | the bans |
 * | DELETE /v1/bans/:id | operator | lifts a ban |
 * | POST /v1/invites | operator | `{apps?, ttlSeconds?}`: a volunteer token and its join path |
 * | POST /v1/join | anyone | a volunteer token, when the network is open to all (`--open-join`) |
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { APP_NAME } from './app-store.ts';
import type { Ban } from './bans.ts';
import type { ControlPlane } from './control-api.ts';
import { errorCodeOf, SignalingError } from '../protocol/index.ts';
import { bearerToken, sendError } from './http-auth.ts';
import type { AppRef } from '../protocol/index.ts';
import type { SignalingHub } from './signaling-hub.ts';
import { mintToken, verifyToken } from './token.ts';
import { volunteerScope } from '../protocol/index.ts';

export interface HostsApiOptions {
  /** Anyone may join as a volunteer by opening /join, without an invite. Default false. */
  openJoin?: boolean;
  /** Lifetime of a token handed out by an open /join. Default 24 h. */
  openJoinTtlSeconds?: number;
  /** Longest invite an operator may mint. Default 30 days. */
  maxInviteTtlSeconds?: number;
  /**
   * How long a volunteer stays connected past its invite's expiry (requests in flight finish),
   * before signaling and the ingresses end its sessions (signaling-hub.ts). Default 10000 ms.
   */
  inviteGraceMs?: number;
}

export const HOSTS_API_DEFAULTS = { openJoinTtlSeconds: 24 * 3600, maxInviteTtlSeconds: 30 * 24 * 3600, inviteTtlSeconds: 24 * 3600 } as const;

/** Open joins per address: a burst of 5, then one a minute. */
const JOIN_RATE = { perSecond: 1 / 60, burst: 5 };

export function registerHostsApi(app: FastifyInstance, hub: SignalingHub, { store, cache }: ControlPlane, secret: string, options: HostsApiOptions = {}): void {
  const operator = async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      verifyToken(secret, bearerToken(request), ['operator']);
    } catch (err) {
      if (!(err instanceof SignalingError)) throw err;
      return sendError(reply, err.code, err.message);
    }
  };
  type Params = { id: string };
  const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store');
  // Ban writes go to the control store: down, they answer 503 APP_STORE_UNAVAILABLE.
  app.setErrorHandler((err: Error, _req, reply) => {
    const code = errorCodeOf(err);
    if (!code) return reply.send(err);
    return sendError(reply, code, err.message);
  });
  /** This node's checks see a ban write at once; other nodes hear of it through the store's watch. */
  const applied = () => cache.refresh().catch(() => undefined);

  app.get('/v1/hosts', { preHandler: operator }, async (_req, reply) => noStore(reply).send({ hosts: hub.hosts() }));

  app.post<{ Params: Params; Body: { draining?: unknown } | null }>('/v1/hosts/:id/drain', { preHandler: operator }, async (req, reply) => {
    const draining = req.body?.draining !== false;
    // Any node: a host on another node is drained by its own node (bus `drain`).
    let host;
    try {
      host = await hub.setDraining(req.params.id, draining);
    } catch (err) {
      if (!(err instanceof SignalingError)) throw err;
      return sendError(reply, err.code, err.message);
    }
    if (!host) return sendError(reply, 'SIG_UNKNOWN_PEER', `no host ${req.params.id} is connected`);
    return noStore(reply).send({ host });
  });

  app.post<{ Params: Params; Body: { reason?: unknown; invite?: unknown; address?: unknown } | null }>('/v1/hosts/:id/ban', { preHandler: operator }, async (req, reply) => {
    const host = hub.hosts().find((h) => h.id === req.params.id);
    if (!host) return sendError(reply, 'SIG_UNKNOWN_PEER', `no host ${req.params.id} is connected`);
    const reason = typeof req.body?.reason === 'string' ? req.body.reason : '';
    const added: Ban[] = [];
    if (host.hostId) added.push(await store.addBan('host', host.hostId, reason));
    // Addresses are shared (NAT, a campus, loopback in development): banned only when asked.
    if (req.body?.address === true && host.address) added.push(await store.addBan('address', host.address, reason));
    if (req.body?.invite === true && host.sub) added.push(await store.addBan('invite', host.sub, reason));
    await applied();
    // The ban holds at every node's next hello (and each node rescans its sockets on the change); the kick reaches the host's node now.
    try {
      await hub.disconnectBanned(host.id, reason);
    } catch (err) {
      if (!(err instanceof SignalingError)) throw err;
      req.log.warn({ host: host.id, code: err.code }, 'banned host could not be disconnected now (its node will refuse its next hello)');
    }
    return noStore(reply).send({ host, bans: added });
  });

  app.get('/v1/bans', { preHandler: operator }, async (_req, reply) => noStore(reply).send({ bans: cache.bans() }));

  app.delete<{ Params: Params }>('/v1/bans/:id', { preHandler: operator }, async (req, reply) => {
    if (!(await store.removeBan(req.params.id))) return sendError(reply, 'SIG_UNKNOWN_PEER', `no ban ${req.params.id}`);
    await applied();
    return noStore(reply).send({ ok: true });
  });

  app.post<{ Body: { apps?: unknown; ttlSeconds?: unknown; name?: unknown } | null }>('/v1/invites', { preHandler: operator }, async (req, reply) => {
    const apps = req.body?.apps ?? [];
    if (!Array.isArray(apps) || apps.length > 16 || !apps.every((a) => typeof a === 'string' && APP_NAME.test(a))) {
      return sendError(reply, 'SIG_BAD_MESSAGE', '"apps" must be a list of at most 16 app names');
    }
    const max = options.maxInviteTtlSeconds ?? HOSTS_API_DEFAULTS.maxInviteTtlSeconds;
    const ttl = req.body?.ttlSeconds ?? HOSTS_API_DEFAULTS.inviteTtlSeconds;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 60 || ttl > max) return sendError(reply, 'SIG_BAD_MESSAGE', `"ttlSeconds" must be 60 to ${max}`);
    const sub = `invite-${Math.random().toString(36).slice(2, 10)}`;
    const token = mintToken(secret, { role: 'host', sub, ttlSeconds: ttl, scope: volunteerScope(apps as string[]) });
    const warnings = inviteWarnings(apps as string[], hub.deployedApps());
    return noStore(reply).code(201).send({ token, sub, apps, warnings, expiresAt: new Date((Math.floor(Date.now() / 1000) + Math.ceil(ttl)) * 1000).toISOString(), path: `/join?invite=${token}` });
  });

  app.post('/v1/join', async (req, reply) => {
    if (!options.openJoin) return sendError(reply, 'SIG_JOIN_CLOSED', 'this network takes volunteers by invite only: ask the operator for a join link');
    const address = req.socket.remoteAddress ?? '';
    if (cache.banMatch({ address }) !== null) return sendError(reply, 'SIG_BANNED', 'this address is banned');
    // Cluster-wide (a GCRA bucket in Redis; this node's own bucket while Redis is down).
    if (!(await hub.cluster.ephemeral.take(`join:${address}`, JOIN_RATE))) return sendError(reply, 'SIG_RATE_LIMITED', 'too many joins from this address; try again in a minute');
    const ttl = options.openJoinTtlSeconds ?? HOSTS_API_DEFAULTS.openJoinTtlSeconds;
    const token = mintToken(secret, { role: 'host', sub: `open-${Math.random().toString(36).slice(2, 10)}`, ttlSeconds: ttl, scope: volunteerScope() });
    return noStore(reply).send({ token, expiresAt: new Date(Date.now() + ttl * 1000).toISOString() });
  });
}

/**
 * What an invite for `apps` will not let a volunteer serve, as of now: apps not deployed, or
 * deployed without `--volunteers` (the invite is still made: the operator may fix the deploy).
 * With no app store, nothing is known and nothing is said.
 */
export function inviteWarnings(apps: readonly string[], deployed: readonly AppRef[] | null): string[] {
  if (deployed === null) return [];
  const open = deployed.filter((a) => a.config.volunteers);
  if (apps.length === 0) return open.length === 0 ? ['no app is deployed with --volunteers yet: volunteers with this link will have nothing to serve until one is'] : [];
  const out: string[] = [];
  for (const name of apps) {
    const app = deployed.find((a) => a.name === name);
    if (!app) out.push(`${name} is not deployed: volunteers cannot serve it until it is deployed with --volunteers`);
    else if (!app.config.volunteers) out.push(`${name} was deployed without --volunteers: volunteers cannot serve it (redeploy it with --volunteers, if it works without its secrets)`);
  }
  return out;
}
