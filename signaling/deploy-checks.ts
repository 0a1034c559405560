/**
 * Deploy checks across the cluster: a candidate version is loaded by up to two operator hosts
 * (local ones first, others asked over the node bus through their own node), and the first
 * answer decides. Keeps the checks this node started (`#checks`) and those it relays for another
 * node's deploy (`#remote`, whose answers go back to the node that asked). The hub
 * (signaling-hub.ts) hands in how to reach a local host and the bus.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { AppConfig, CheckedMessage, ServerMessage } from '../protocol/index.ts';
import type { Directory } from './cluster/directory.ts';
import type { BusMessage, ClusterParts, PresenceEntry } from './cluster/types.ts';
import { hostName, type Connection } from './hub-peer.ts';

/** How a host's load of a candidate version went (see {@link DeployChecks.check}). */
export type CheckOutcome =
  | { status: 'ok'; host: string; ms: number }
  | { status: 'failed'; host: string; error: string; ms: number }
  /** No host answered in time, or every host asked left first. */
  | { status: 'timeout'; hosts: string[] }
  /** No operator host that could run the app was connected: nothing was checked. */
  | { status: 'skipped' };

interface PendingCheck {
  /** The peer ids of the hosts asked (on this node or others). */
  readonly asked: Set<string>;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly names: string[];
  settle(outcome: CheckOutcome): void;
}

/** A check this node relays for another node's deploy: the host's answer goes back to `origin`. */
interface RemoteCheck {
  readonly origin: string;
  readonly host: string;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** How many hosts load a candidate at once; the first answer decides. */
const CHECK_FAN_OUT = 2;

/** How long this node remembers a check it relays for another node (longer than any check timeout). */
const REMOTE_CHECK_TTL_MS = 5 * 60_000;

/** What the checks need of the hub. */
export interface DeployChecksHub {
  readonly cluster: ClusterParts;
  readonly directory: Directory;
  readonly log: FastifyBaseLogger;
  /** A welcomed local peer by id. */
  local(id: string): Connection | undefined;
  send(conn: Connection, message: ServerMessage): void;
}

export class DeployChecks {
  readonly #hub: DeployChecksHub;
  readonly #checks = new Map<string, PendingCheck>();
  readonly #remote = new Map<string, RemoteCheck>();

  constructor(hub: DeployChecksHub) {
    this.#hub = hub;
  }

  /** Asks up to two of `eligible` (best first) to load candidate `id`; resolves with the first answer. */
  check(id: string, app: string, config: AppConfig, timeoutMs: number, eligible: PresenceEntry[]): Promise<CheckOutcome> {
    if (eligible.length === 0) return Promise.resolve({ status: 'skipped' });
    const me = this.#hub.cluster.nodeId;
    const asked = eligible.slice(0, CHECK_FAN_OUT);
    const names = asked.map((e) => hostName(e.peer.info, e.peer.id));
    return new Promise<CheckOutcome>((resolve) => {
      const pending: PendingCheck = {
        asked: new Set(asked.map((e) => e.peer.id)),
        names,
        timer: setTimeout(() => pending.settle({ status: 'timeout', hosts: names }), timeoutMs),
        settle: (outcome) => {
          if (this.#checks.get(id) !== pending) return;
          this.#checks.delete(id);
          clearTimeout(pending.timer);
          resolve(outcome);
        },
      };
      this.#checks.set(id, pending);
      for (const e of asked) {
        const local = this.#hub.local(e.peer.id);
        if (local) {
          this.#hub.send(local, { type: 'check', id, app, config });
          continue;
        }
        this.#hub.cluster.bus.send(e.node, { v: 1, t: 'check', id, host: e.peer.id, app, config, origin: me }).catch((err: unknown) => {
          this.#hub.log.warn({ err: String(err), node: e.node, check: id }, 'cannot ask a host on another node to check');
          this.askFailed(id, e.peer.id);
        });
      }
    });
  }

  /** A local host's answer to a check: only a host that was asked may answer it; late answers are dropped. */
  answered(conn: Connection, message: CheckedMessage): void {
    const pending = this.#checks.get(message.id);
    if (pending?.asked.has(conn.id)) {
      const host = hostName(conn.info ?? {}, conn.id);
      pending.settle(message.ok ? { status: 'ok', host, ms: message.ms } : { status: 'failed', host, error: message.error || 'unknown error', ms: message.ms });
      return;
    }
    const remote = this.#remote.get(message.id);
    if (!remote || remote.host !== conn.id) return;
    this.#remote.delete(message.id);
    clearTimeout(remote.timer);
    this.#hub.cluster.bus.send(remote.origin, { v: 1, t: 'checked', id: message.id, host: conn.id, ok: message.ok, error: message.error, ms: message.ms }).catch((err: unknown) => {
      this.#hub.log.warn({ err: String(err), node: remote.origin, check: message.id }, 'cannot return a check result to its node');
    });
  }

  /** Another node asks a host of this node to check (bus `check`). */
  onBusCheck(m: Extract<BusMessage, { t: 'check' }>): void {
    const host = this.#hub.local(m.host);
    if (!host || host.role !== 'host' || host.endReason !== null) return;
    const old = this.#remote.get(m.id);
    if (old) clearTimeout(old.timer);
    const timer = setTimeout(() => this.#remote.delete(m.id), REMOTE_CHECK_TTL_MS);
    timer.unref?.();
    this.#remote.set(m.id, { origin: m.origin, host: m.host, timer });
    this.#hub.send(host, { type: 'check', id: m.id, app: m.app, config: m.config });
  }

  /** A host of another node answered a check of this node (bus `checked`). */
  onBusChecked(m: Extract<BusMessage, { t: 'checked' }>): void {
    const pending = this.#checks.get(m.id);
    if (!pending?.asked.has(m.host)) return;
    const entry = this.#hub.directory.lookup(m.host)?.entry;
    const host = entry ? hostName(entry.peer.info, m.host) : m.host;
    pending.settle(m.ok ? { status: 'ok', host, ms: m.ms } : { status: 'failed', host, error: m.error || 'unknown error', ms: m.ms });
  }

  /** Host `host` can no longer answer check `id`: when no host asked is left, the check times out now. */
  askFailed(id: string, host: string): void {
    const pending = this.#checks.get(id);
    if (pending && pending.asked.delete(host) && pending.asked.size === 0) pending.settle({ status: 'timeout', hosts: pending.names });
  }

  /** A host left: no check waits for it any longer. */
  hostLeft(host: string): void {
    for (const id of [...this.#checks.keys()]) this.askFailed(id, host);
  }

  /** After the directory was rebuilt: hosts asked that are gone or on a lost node answer no more. */
  dropUnreachable(): void {
    for (const [id, pending] of this.#checks) for (const host of [...pending.asked]) if (!this.#hub.directory.lookup(host)?.live) this.askFailed(id, host);
  }

  close(): void {
    for (const r of this.#remote.values()) clearTimeout(r.timer);
    this.#remote.clear();
  }
}
