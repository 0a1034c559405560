/**
 * The scenarios' cluster on one machine (SCALE-OUT §4.3): Redis and Postgres over TCP, M
 * signaling nodes, each behind a load balancer that prefers it and fails over to the others (so
 * placement is deterministic and a dead node's clients land on a live one), N ingresses on the
 * WebSocket transport with peer listeners and a shared Redis KV, and echo hosts homed on each
 * node. Everything runs as real processes of the real CLI, except the hosts (in this process).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../free-port.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintToken } from '../../signaling/index.ts';
import { startPostgres, type PostgresServer } from '../../tools/postgres.ts';
import { startRedisTcp, type RedisTcpServer } from '../../tools/redis.ts';
import { runDcdn, type CliResult } from '../cli.ts';
import { httpJson } from './http-call.ts';
import { assertClusterHealth, explainStartFailure, ingressHealth, signalHealth, waitFor, type IngressHealth, type SignalHealth } from './cluster-api.ts';
import { EchoHosts } from './echo-hosts.ts';
import { Procs, type Proc } from './procs.ts';
import { startTcpLb, type TcpLb } from './tcp-lb.ts';

/** The ingresses' `--detach-grace` in the scenarios (ms). */
export const DETACH_GRACE_MS = 2000;

export const SECRET = 'cluster-suite-secret-0123456789abcdef';
export const CLUSTER_NAME = 'ct';
/** Every host attached, views converged: the bound the scenarios start from. */
export const CONVERGE_MS = 20_000;

export { freePort };

export interface SignalSpec {
  nodeId: string;
  region: string;
  /** Extra flags (`--app FILE`, `--open-join`…). */
  extra?: string[];
}

export interface IngressSpec {
  name: string;
  region: string;
  /** Index of the signaling node whose load balancer it dials. */
  home: number;
  transport?: 'websocket' | 'webrtc';
}

export interface HostSpec {
  name: string;
  home: number;
  capabilities?: string[];
}

export interface ClusterSpec {
  signaling: SignalSpec[];
  ingresses: IngressSpec[];
  hosts: HostSpec[];
  attach?: number;
  /** Apps to deploy once up (through the control API, without a check): name → deploy config. */
  apps?: Record<string, { kv?: string[]; require?: string[]; volunteers?: boolean }>;
}

export interface SignalNode extends SignalSpec {
  proc: Proc;
  port: number;
  /** `http://127.0.0.1:PORT` (the node itself, not its load balancer). */
  url: string;
  /** The load balancer that prefers this node (hosts and ingresses homed here dial it). */
  front: TcpLb;
  /** The signaling command line, to restart the node the same way. */
  args: string[];
}

export interface IngressNode extends IngressSpec {
  proc: Proc;
  url: string;
  peerUrl: string;
  args: string[];
}

/** The default topology of §4.3: s1, s2; i1, i2 on s1, i3 on s2; 10 hosts on each node, one with webgpu. */
export function defaultSpec(overrides: Partial<ClusterSpec> = {}): ClusterSpec {
  const hosts: HostSpec[] = [];
  for (let i = 0; i < 10; i++) hosts.push({ name: `h1-${i}`, home: 0 });
  for (let i = 0; i < 10; i++) hosts.push({ name: `h2-${i}`, home: 1, ...(i === 0 ? { capabilities: ['webgpu'] } : {}) });
  return {
    signaling: [
      { nodeId: 's1', region: 'home' },
      { nodeId: 's2', region: 'home' },
    ],
    ingresses: [
      { name: 'i1', region: 'home', home: 0 },
      { name: 'i2', region: 'home', home: 0 },
      { name: 'i3', region: 'home', home: 1 },
    ],
    hosts,
    attach: 2,
    apps: { echo: { kv: ['CACHE'] }, gpu: { require: ['webgpu'] } },
    ...overrides,
  };
}

/** The setup's app: echo hosts never run it; the Chromium tab of t01b does. */
const APP_SOURCE = `export default { fetch() { return new Response('cluster app'); } };\n`;

export class Cluster {
  readonly procs = new Procs();
  readonly hosts = new EchoHosts(SECRET);
  readonly operatorToken = mintToken(SECRET, { role: 'operator', sub: 'cluster-suite', ttlSeconds: 6 * 3600 });
  readonly dir = mkdtempSync(join(tmpdir(), 'dcdn-cluster-'));
  redis!: RedisTcpServer;
  pg!: PostgresServer;
  controlStoreUrl = '';
  readonly signals: SignalNode[] = [];
  readonly ingresses: IngressNode[] = [];

  constructor(readonly spec: ClusterSpec) {}

  /** Starts everything and waits until every node is ready. Fails with MISSING FEATURE when the CLI lacks a cluster flag. */
  async start(): Promise<void> {
    [this.redis, this.pg] = await Promise.all([startRedisTcp({ port: await freePort() }), startPostgres({ host: '127.0.0.1', port: await freePort() })]);
    await this.pg.createDatabase('dcdn');
    this.controlStoreUrl = this.pg.urlFor('dcdn');
    const ports = await Promise.all(this.spec.signaling.map(() => freePort()));
    for (const [i, s] of this.spec.signaling.entries()) {
      const port = ports[i]!;
      const args = this.signalArgs(s, port);
      // Fronts prefer their node and fail over in list order; probed like a real LB.
      const order = [i, ...this.spec.signaling.map((_, j) => j).filter((j) => j !== i)];
      const front = await startTcpLb({ policy: 'first', upstreams: order.map((j) => ({ host: '127.0.0.1', port: ports[j]! })), probe: { path: '/v1/health' } });
      this.signals.push({ ...s, proc: this.procs.dcdn(s.nodeId, args), port, url: `http://127.0.0.1:${port}`, front, args });
    }
    await Promise.all(this.signals.map((n) => this.#ready(n)));
    for (const spec of this.spec.ingresses) {
      const [port, peerPort] = [await freePort(), await freePort()];
      const args = this.ingressArgs(spec, port, peerPort);
      this.ingresses.push({ ...spec, proc: this.procs.dcdn(spec.name, args), url: `http://127.0.0.1:${port}`, peerUrl: `http://127.0.0.1:${peerPort}`, args });
    }
    await Promise.all(this.ingresses.map((i) => this.#ingressReady(i)));
    assertClusterHealth(await signalHealth(this.signals[0]!.url, this.operatorToken), `${this.signals[0]!.nodeId}:`);
    for (const h of this.spec.hosts) this.startHost(h);
    // Through the API, not `dcdn deploy`: no bundling, seconds saved per scenario (T2 and T8 test the CLI's deploy).
    for (const [name, config] of Object.entries(this.spec.apps ?? {})) await this.deployApi(name, config);
    // Scenarios compare versions against what hosts serve: start once every host knows every app.
    const apps = Object.keys(this.spec.apps ?? {});
    await waitFor(
      async () => [...this.hosts.hosts.values()].every((h) => apps.every((a) => h.versions.has(a))),
      CONVERGE_MS,
      () => `not every host was told of the apps ${apps.join(', ')} (deploys through the shared control store, deliverable 2)`,
      100,
    );
  }

  /** `PUT /v1/apps/NAME` through node `node`, unchecked: the setup's deploys. */
  async deployApi(name: string, config: NonNullable<ClusterSpec['apps']>[string], node = 0): Promise<{ version: number }> {
    const r = await httpJson<{ version: number }>(`${this.signals[node]!.url}/v1/apps/${name}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${this.operatorToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ code: APP_SOURCE, config, check: false, message: 'cluster suite' }),
      timeoutMs: 30_000,
    });
    if (r.status !== 201 || !r.json) throw new Error(`deploying ${name} through ${this.signals[node]!.nodeId} failed: ${r.status} ${r.res.body}`);
    return r.json;
  }

  signalArgs(s: SignalSpec, port: number): string[] {
    return [
      'signal', '--port', String(port), '--host', '127.0.0.1', '--secret', SECRET,
      '--cluster', this.redis.url, '--control-store', this.controlStoreUrl, '--cluster-name', CLUSTER_NAME,
      '--node-id', s.nodeId, '--region', s.region, '--attach', String(this.spec.attach ?? 2), ...(s.extra ?? []),
    ];
  }

  ingressArgs(spec: IngressSpec, port: number, peerPort: number): string[] {
    return [
      'ingress', '--signal', this.signals[spec.home]!.front.url, '--port', String(port), '--host', '127.0.0.1',
      '--name', spec.name, '--region', spec.region, '--secret', SECRET, '--transport', spec.transport ?? 'websocket',
      '--peer-listen', `127.0.0.1:${peerPort}`, '--peer-url', `http://127.0.0.1:${peerPort}`, '--kv-store', this.redis.url,
      // A host placed elsewhere keeps its session for the detach grace (30 s by default, so
      // blips do not churn); the scenarios assert the settled placement, so they shorten it.
      '--detach-grace', String(DETACH_GRACE_MS),
    ];
  }

  async #ready(n: SignalNode): Promise<void> {
    try {
      await n.proc.waitReady(async () => (await signalHealth(n.url, this.operatorToken)) !== null, 'ready (GET /v1/health 200)');
    } catch (err) {
      throw explainStartFailure(err);
    }
  }

  async #ingressReady(i: IngressNode): Promise<void> {
    try {
      await i.proc.waitReady(async () => (await ingressHealth(i.url))?.signaling === true, 'connected to signaling (GET /_dcdn/health)');
    } catch (err) {
      throw explainStartFailure(err);
    }
  }

  /** Starts an echo host homed on a node's load balancer. */
  startHost(h: HostSpec) {
    const front = this.signals[h.home]!.front;
    return this.hosts.start({ name: h.name, signalUrl: `ws://127.0.0.1:${front.address.port}/v1/signal`, capabilities: h.capabilities });
  }

  /** Restarts a killed signaling node with the same flags (and a new process). */
  async restartSignal(index: number): Promise<void> {
    const n = this.signals[index]!;
    n.proc = this.procs.dcdn(`${n.nodeId}'`, n.args);
    await this.#ready(n);
  }

  async restartIngress(name: string): Promise<void> {
    const i = this.ingress(name);
    i.proc = this.procs.dcdn(`${name}'`, i.args);
    await this.#ingressReady(i);
  }

  ingress(name: string): IngressNode {
    const i = this.ingresses.find((x) => x.name === name);
    if (!i) throw new Error(`no ingress ${name}`);
    return i;
  }

  /** `dcdn ARGS` against signaling (through node `via`'s URL), as the operator. */
  dcdn(...args: string[]): Promise<CliResult> {
    return this.dcdnVia(0, ...args);
  }

  dcdnVia(node: number, ...args: string[]): Promise<CliResult> {
    const home = join(this.dir, 'cli-home');
    return runDcdn({ PATH: process.env.PATH, HOME: home, DCDN_HOME: home }, [...args, '--signal', this.signals[node]!.url, '--token', this.operatorToken], { timeoutMs: 60_000 });
  }

  health(node: number): Promise<SignalHealth | null> {
    return signalHealth(this.signals[node]!.url, this.operatorToken);
  }

  ingressHealth(name: string): Promise<IngressHealth | null> {
    return ingressHealth(this.ingress(name).url);
  }

  /**
   * Host ids attached at each live ingress (its health's `id`: ingresses key sessions by host id,
   * so two hosts that claimed one id show under one entry, with the first one's name).
   */
  async attachments(names = this.ingresses.filter((i) => i.proc.running).map((i) => i.name)): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const name of names) {
      const h = await this.ingressHealth(name);
      out.set(name, (h?.hosts ?? []).map((x) => x.id).sort());
    }
    return out;
  }

  /** Waits until every live host is attached to exactly `k` live ingresses. */
  async untilAttached(k: number, ms = CONVERGE_MS): Promise<Map<string, string[]>> {
    let last = new Map<string, string[]>();
    return waitFor(
      async () => {
        last = await this.attachments();
        const counts = new Map<string, number>();
        for (const names of last.values()) for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
        const live = [...this.hosts.hosts.values()].map((h) => h.hostId);
        return live.every((n) => counts.get(n) === k) && [...counts.keys()].every((n) => live.includes(n)) ? last : null;
      },
      ms,
      () => `not every host attached to exactly ${k} ingresses (K-of-N placement, deliverable 3); last: ${JSON.stringify(Object.fromEntries(last))}`,
      250,
    );
  }

  /** Waits until node `node`'s health lists exactly the live echo hosts. */
  async untilNodeSeesHosts(node: number, ms = CONVERGE_MS): Promise<SignalHealth> {
    const want = [...this.hosts.hosts.keys()].sort();
    let last: SignalHealth | null = null;
    return waitFor(
      async () => {
        last = await this.health(node);
        if (last === null) return null;
        const seen = last.peers.filter((p) => p.role === 'host').map((p) => String(p.info?.name ?? '')).sort();
        return JSON.stringify(seen) === JSON.stringify(want) ? last : null;
      },
      ms,
      () => `${this.signals[node]!.nodeId} does not list exactly the ${want.length} live hosts (cluster-wide presence, deliverable 1); it lists ${last ? last.peers.filter((p) => p.role === 'host').length : 'nothing'}`,
      250,
    );
  }

  dumpLogs(): string {
    return this.procs.dumpLogs();
  }

  /** Stops everything; never throws. */
  async close(): Promise<void> {
    this.hosts.closeAll();
    await this.procs.killAll();
    await Promise.all(this.signals.map((n) => n.front.close().catch(() => undefined)));
    await this.redis?.stop().catch(() => undefined);
    await this.pg?.stop().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

