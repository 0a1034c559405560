/**
 * The hub's side of the node bus (cluster/types.ts `NodeBus`): relaying a signal to a peer held
 * by another signaling node, and acting on what other nodes send this one (a relayed signal, an
 * unreachable peer, a deploy check and its answer, a scheduled run and its result, a kick for a
 * ban, a drain). docs/cluster.md
 * "Relay" and "Other operations across nodes". Unknown messages are ignored, so a rolling
 * upgrade may mix versions.
 */
import type { FastifyBaseLogger } from 'fastify';
import { SignalingError, type ServerMessage, type SignalingErrorCode, type SignalRequest } from '../protocol/index.ts';
import type { Directory } from './cluster/directory.ts';
import type { BusMessage, ClusterParts, NodeBus } from './cluster/types.ts';
import type { DeployChecks } from './deploy-checks.ts';
import type { Connection } from './hub-peer.ts';

/** What the bus handling needs of the hub. */
export interface BusHub {
  readonly cluster: ClusterParts;
  readonly directory: Directory;
  readonly log: FastifyBaseLogger;
  readonly checks: DeployChecks;
  /** A welcomed local peer by id. */
  local(id: string): Connection | undefined;
  send(conn: Connection, message: ServerMessage): void;
  fail(conn: Connection, code: SignalingErrorCode, message: string): void;
  setLocalDraining(conn: Connection, draining: boolean): void;
  /** Scheduled runs another node asks of this node's ingresses, and their results (cron-dispatch.ts). */
  cron(m: Extract<BusMessage, { t: 'cron' | 'cron-result' }>): void;
  onrelay?: (() => void) | undefined;
}

/**
 * Relays `message` from local peer `conn` to a peer that is not local: over the bus to the node
 * that holds it. SIG_UNKNOWN_PEER when no such peer of the other role is known,
 * SIG_PEER_UNREACHABLE when its node's lease ran out or the bus fails.
 */
export function relayToNode(hub: BusHub, conn: Connection, message: SignalRequest, unknown: () => void): void {
  const found = hub.directory.lookup(message.to);
  if (!found || found.entry.peer.role === conn.role || found.entry.node === hub.cluster.nodeId) return unknown();
  const unreachable = () => hub.send(conn, { type: 'error', code: 'SIG_PEER_UNREACHABLE', message: 'the peer is on a signaling node that cannot be reached now', to: message.to });
  if (!found.live) return unreachable();
  hub.cluster.bus.send(found.entry.node, { v: 1, t: 'signal', from: conn.id, to: message.to, data: message.data }).then(
    () => hub.onrelay?.(),
    (err: unknown) => {
      hub.log.warn({ err: String(err), node: found.entry.node, peer: conn.id }, 'cannot relay a signal to another node');
      unreachable();
    },
  );
}

/** Messages from other signaling nodes (unknown types are ignored: mixed versions during upgrades). */
export function handleBusMessage(hub: BusHub, m: BusMessage, from: string): void {
  if (m.v !== 1) return;
  switch (m.t) {
    case 'signal': {
      const target = hub.local(m.to);
      if (!target || target.endReason !== null) {
        void hub.cluster.bus.send(from, { v: 1, t: 'unreachable', to: m.from, peer: m.to }).catch(() => {});
        return;
      }
      hub.send(target, { type: 'signal', from: m.from, data: m.data });
      return;
    }
    case 'unreachable': {
      const conn = hub.local(m.to);
      if (conn) hub.send(conn, { type: 'error', code: 'SIG_UNKNOWN_PEER', message: 'no such peer of the other role', to: m.peer });
      return;
    }
    case 'cron':
    case 'cron-result':
      return hub.cron(m);
    case 'check':
      return hub.checks.onBusCheck(m);
    case 'checked':
      return hub.checks.onBusChecked(m);
    case 'kick': {
      const conn = hub.local(m.peer);
      if (conn) hub.fail(conn, m.code, m.message);
      return;
    }
    case 'drain': {
      const conn = hub.local(m.peer);
      if (conn && conn.role === 'host') hub.setLocalDraining(conn, m.draining);
      return;
    }
    default:
      // A type added to BusMessage must be handled here (at run time, another version's are ignored).
      m satisfies never;
  }
}

/**
 * Sends an operator's action to another node.
 *
 * @throws {SignalingError} SIG_PEER_UNREACHABLE when that node cannot be reached.
 */
export async function sendBus(bus: NodeBus, node: string, m: BusMessage): Promise<void> {
  try {
    await bus.send(node, m);
  } catch (err) {
    throw new SignalingError('SIG_PEER_UNREACHABLE', `signaling node ${node} cannot be reached: ${String(err)}`);
  }
}
