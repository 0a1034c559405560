/**
 * Optional OpenTelemetry export of the ingress's spans (`--otlp URL`): one SERVER span per
 * request, in the trace the handler's `traceparent` names (request-id.ts), so the ingress's hop
 * appears in the operator's tracing backend beside the services the handler calls.
 *
 * Kept cheap: OTLP/HTTP with the JSON encoding (https://opentelemetry.io/docs/specs/otlp/#otlphttp),
 * no SDK; spans are batched (`batchSize`, or every `intervalMs`), at most one export is in flight,
 * and a queue past `maxQueue` drops spans and counts them, so a slow or absent collector never
 * slows requests nor grows memory. Only sampled traces are exported (the `traceparent` flag).
 * Spans of the host (the handler in the tab) and of KV calls are not exported yet.
 */

export interface OtlpOptions {
  /** The collector's traces endpoint, e.g. `http://otel-collector:4318/v1/traces`. */
  url: string;
  /** `service.name` of the spans. Default `dcdn-ingress`. */
  serviceName?: string;
  /** Spans per export. Default 512. */
  batchSize?: number;
  /** Longest time a span waits for its batch, in ms. Default 1000. */
  intervalMs?: number;
  /** Spans held at most while exports are slow or failing; more are dropped. Default 4096. */
  maxQueue?: number;
  /** An export that takes longer is abandoned (its spans counted as failed). Default 5000 ms. */
  timeoutMs?: number;
}

export const OTLP_DEFAULTS = { serviceName: 'dcdn-ingress', batchSize: 512, intervalMs: 1000, maxQueue: 4096, timeoutMs: 5000 } as const;

/** One finished span, in the ingress's terms. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startMs: number;
  endMs: number;
  /** A 5xx answer or a dcdn error code. */
  error: boolean;
  attributes: Record<string, string | number | boolean>;
}

export class OtlpExporter {
  readonly stats = { exported: 0, dropped: 0, failed: 0 };
  readonly #opts: Required<OtlpOptions>;
  #queue: SpanRecord[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: Promise<void> | null = null;
  #closed = false;

  constructor(options: OtlpOptions) {
    this.#opts = { ...OTLP_DEFAULTS, ...options };
  }

  /** Queues a span for export; dropped (and counted) past `maxQueue` or after close. */
  add(span: SpanRecord): void {
    if (this.#closed || this.#queue.length >= this.#opts.maxQueue) {
      this.stats.dropped++;
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#opts.batchSize) this.#exportSoon(0);
    else this.#exportSoon(this.#opts.intervalMs);
  }

  /** Exports what is queued now (and waits for an export in flight). */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#inFlight || this.#queue.length > 0) {
      if (this.#inFlight) await this.#inFlight;
      else this.#export();
    }
  }

  /** Exports what is queued and takes no more spans. */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }

  #exportSoon(ms: number): void {
    if (this.#inFlight) return; // its end schedules the next
    if (this.#timer !== undefined && ms > 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#export();
    }, ms);
    this.#timer.unref?.();
  }

  #export(): void {
    if (this.#inFlight || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.#opts.batchSize);
    this.#inFlight = this.#post(batch).finally(() => {
      this.#inFlight = null;
      if (this.#queue.length > 0) this.#exportSoon(this.#queue.length >= this.#opts.batchSize ? 0 : this.#opts.intervalMs);
    });
  }

  async #post(batch: SpanRecord[]): Promise<void> {
    try {
      const res = await fetch(this.#opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(otlpPayload(batch, this.#opts.serviceName)),
        signal: AbortSignal.timeout(this.#opts.timeoutMs),
      });
      await res.arrayBuffer().catch(() => {});
      if (res.ok) this.stats.exported += batch.length;
      else this.stats.failed += batch.length;
    } catch {
      this.stats.failed += batch.length;
    }
  }
}

/** The OTLP/JSON `ExportTraceServiceRequest` for `spans`. */
export function otlpPayload(spans: SpanRecord[], serviceName: string): unknown {
  return {
    resourceSpans: [
      {
        resource: { attributes: [attribute('service.name', serviceName)] },
        scopeSpans: [
          {
            scope: { name: 'dcdn-ingress' },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              name: s.name,
              kind: 2, // SPAN_KIND_SERVER
              startTimeUnixNano: nanos(s.startMs),
              endTimeUnixNano: nanos(s.endMs),
              attributes: Object.entries(s.attributes).map(([k, v]) => attribute(k, v)),
              status: { code: s.error ? 2 : 0 }, // STATUS_CODE_ERROR, STATUS_CODE_UNSET
            })),
          },
        ],
      },
    ],
  };
}

function attribute(key: string, value: string | number | boolean): unknown {
  if (typeof value === 'boolean') return { key, value: { boolValue: value } };
  if (typeof value === 'number') return Number.isInteger(value) ? { key, value: { intValue: String(value) } } : { key, value: { doubleValue: value } };
  return { key, value: { stringValue: value } };
}

/** Epoch ms (fractional) as the decimal string of nanoseconds OTLP/JSON wants for fixed64. */
function nanos(ms: number): string {
  return (BigInt(Math.floor(ms)) * 1_000_000n + BigInt(Math.round((ms % 1) * 1e6))).toString();
}
