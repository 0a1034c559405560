/**
 * The control plane's durable state (apps, versions, secrets, bans, keys) behind one async
 * interface: SQLite on one machine (sqlite-control-store.ts, today's file and schema), Postgres in
 * a cluster (pg-control-store.ts). Every write bumps `version()` and reaches every node's
 * `watch()`; reads on the serving path go through a cache, so a store outage stops writes, never
 * serving.
 */
import type { AppConfig, CronRun } from '../protocol/index.ts';
import type { AppManifestEntry, AppSummary, AppVersion } from './app-store.ts';
import type { Ban, BanKind } from './bans.ts';

/** What `watch` reports: the control version now, and what kind of state a write changed. */
export interface ControlChange {
  version: number;
  what: 'apps' | 'bans';
}

/** How one scheduled run ended; the shape lives in protocol/ because the CLI reads it too. */
export type { CronRun };

/** An app's cron state: the last tick claimed (ms since the epoch, 0 for none) and the last run. */
export interface CronState {
  app: string;
  lastTick: number;
  lastRun: CronRun | null;
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
  /**
   * Claims the tick `tick` (ms since the epoch) of `app`'s schedule: true for exactly one caller
   * across every node and restart (a compare-and-set: the stored last tick moves forward only),
   * false when this tick or a later one was claimed already, or the app is gone. Not a control
   * change: `version()` and `watch` do not see it.
   */
  claimCronTick(app: string, tick: number): Promise<boolean>;
  /** Records how `app`'s latest scheduled run went (kept until the next one). */
  recordCronRun(app: string, run: CronRun): Promise<void>;
  /** Every app's cron state that has one. */
  cronStates(): Promise<CronState[]>;
  /** Bumped by every write. */
  version(): Promise<number>;
  /** Calls back after every write, from any node (NOTIFY plus a poll that heals a lost one). */
  watch(onChange: (c: ControlChange) => void): () => void;
  close(): Promise<void>;
}
