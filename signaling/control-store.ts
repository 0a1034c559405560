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

/** How one scheduled run ended (docs/apps.md, "Cron triggers"); `dcdn apps` shows the last. */
export interface CronRun {
  /** When signaling asked for it (ISO 8601). */
  at: string;
  /** `controller.scheduledTime`: the tick (ms since the epoch), or the time of `dcdn cron trigger`. */
  scheduledTime: number;
  /** `controller.cron`. */
  cron: string;
  /** A tick of the schedule, or `dcdn cron trigger`. */
  trigger: 'schedule' | 'manual';
  ok: boolean;
  /** The error code when not ok (HOST_HANDLER_ERROR, CRON_NO_INGRESS, INGRESS_NO_HOST, CRON_TIMEOUT, ...). */
  code?: string;
  /** The error (message and stack) when not ok. */
  error?: string;
  /** The host that ran it, and the ingress that asked it. */
  host?: string;
  ingress?: string;
  /** How long the run took, as the ingress measured it (ms). */
  ms: number;
}

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
