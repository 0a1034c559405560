/**
 * How operators reach the Prometheus metrics, as flags shared by `dcdn ingress`, `dcdn signal`
 * and `dcdn up` (docs/observability.md): a fixed scrape token, and a separate listen address
 * that serves `/metrics` without one (protected by the network it is bound to).
 */
import { isIP } from 'node:net';
import { intFlag, UsageError, type FlagSpec } from './args.ts';

export const metricsFlags = {
  'metrics-token': { type: 'string', help: 'a fixed bearer token Prometheus may scrape metrics with, besides operator tokens (else DCDN_METRICS_TOKEN)' },
  'metrics-listen': { type: 'string', help: 'also serve GET /metrics, without a token, on this ADDRESS:PORT (e.g. 10.0.0.5:9464; bind it where only Prometheus reaches)' },
} satisfies FlagSpec;

/** `--otlp`, on `dcdn ingress` and `dcdn up` (ingress/otlp.ts). */
export const otlpFlags = {
  otlp: { type: 'string', help: "export a span per request to this OpenTelemetry collector's OTLP/HTTP traces URL (e.g. http://127.0.0.1:4318/v1/traces)" },
} satisfies FlagSpec;

/** `--timing-sample`, on `dcdn ingress` and `dcdn up` (ingress/request-timing.ts). */
export const timingFlags = {
  'timing-sample': { type: 'string', help: 'share of requests, 0 to 1, timed hop by hop for the dcdn_request_segment_seconds histogram (default 0: only while a dcdn tail --timing is attached)' },
} satisfies FlagSpec;

/** Reads `--timing-sample`: a number in [0, 1], else a usage error. */
export function timingOptionsFromFlags(v: Record<string, unknown>): { timingSampleRate?: number } {
  const raw = v['timing-sample'] as string | undefined;
  if (raw === undefined) return {};
  const rate = Number(raw);
  if (raw.trim() === '' || !(rate >= 0 && rate <= 1)) throw new UsageError(`--timing-sample must be a number from 0 to 1, got ${JSON.stringify(raw)}`);
  return { timingSampleRate: rate };
}

/** Reads `--otlp`: an http(s) URL, else a usage error. */
export function otlpOptionsFromFlags(v: Record<string, unknown>): { otlp?: { url: string } } {
  const url = v.otlp as string | undefined;
  if (url === undefined) return {};
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--otlp must be an http(s) URL, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--otlp must be an http(s) URL, got ${JSON.stringify(url)}`);
  return { otlp: { url: parsed.href } };
}

/** What the metrics flags set. */
export interface MetricsFlagOptions {
  metricsToken?: string;
  metricsListen?: { host: string; port: number };
}

/** Reads the metrics flags (and DCDN_METRICS_TOKEN); a bad value is a usage error naming its flag. */
export function metricsOptionsFromFlags(v: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): MetricsFlagOptions {
  const token = (v['metrics-token'] as string | undefined) ?? env.DCDN_METRICS_TOKEN;
  if (token !== undefined && token.length < 16) throw new UsageError('--metrics-token must be at least 16 characters');
  const listen = v['metrics-listen'] as string | undefined;
  return {
    ...(token !== undefined ? { metricsToken: token } : {}),
    ...(listen !== undefined ? { metricsListen: parseListen(listen) } : {}),
  };
}

/** `HOST:PORT`, `[V6]:PORT` or `:PORT` (loopback), given as `--<flag>`. */
export function parseListen(text: string, flag = 'metrics-listen'): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new UsageError(`--${flag} must be ADDRESS:PORT (e.g. 127.0.0.1:9464), got ${JSON.stringify(text)}`);
  const host = m[1] ?? (m[2] || '127.0.0.1');
  if (m[1] !== undefined && isIP(m[1]) !== 6) throw new UsageError(`--${flag}: ${m[1]} is not an IPv6 address`);
  const port = intFlag(m[3], `${flag} port`, 0);
  if (port > 65535) throw new UsageError(`--${flag}: port ${port} is over 65535`);
  return { host, port };
}
