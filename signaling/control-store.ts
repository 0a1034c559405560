/**
 * The control plane's durable state (apps, versions, secrets, bans, keys) behind one async
 * interface: SQLite on one machine (sqlite-control-store.ts, today's file and schema), Postgres in
 * a cluster (pg-control-store.ts). Every write bumps `version()` and reaches every node's
 * `watch()`; reads on the serving path go through a cache, so a store outage stops writes, never
 * serving.
 */
import type { AppConfig } from '../protocol/index.ts';
import type { AppManifestEntry, AppSummary, AppVersion } from './app-store.ts';
import type { Ban, BanKind } from './bans.ts';

/** What `watch` reports: the control version now, and what kind of state a write changed. */
export interface ControlChange {
  version: number;
  what: 'apps' | 'bans';
}

export interface ControlStore {
  readonly kind: 'sqlite' | 'postgres';
  deploy(name: string, code: string, message: string, config: Partial<AppConfig>): Promise<AppVersion>;
  /** Deploys unless the active version already has this code and config (`--app` at start); one version however many nodes start at once. */
  deployIfChanged(name: string, code: string, message: string, config: Partial<AppConfig>): Promise<AppVersion | null>;
  rollback(name: string, to?: number): Promise<AppVersion>;
  delete(name: string): Promise<void>;
  putSecret(app: string, name: string, value: string): Promise<void>;
  deleteSecret(app: string, name: string): Promise<boolean>;
  list(): Promise<AppSummary[]>;
  manifest(): Promise<AppManifestEntry[]>;
  code(name: string, version: number): Promise<{ code: string; sha256: string } | undefined>;
  secrets(name: string): Promise<Record<string, string>>;
  addBan(kind: BanKind, value: string, reason: string): Promise<Ban>;
  removeBan(id: string): Promise<boolean>;
  bans(): Promise<Ban[]>;
  /** A random key created on first read and the same on every node. */
  meta(key: 'deployment_key' | 'peer_key'): Promise<string>;
  /** Bumped by every write. */
  version(): Promise<number>;
  /** Calls back after every write, from any node (NOTIFY plus a poll that heals a lost one). */
  watch(onChange: (c: ControlChange) => void): () => void;
  close(): Promise<void>;
}
