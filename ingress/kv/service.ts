/**
 * Serves handlers' KV operations: streams a host opens on its session with the ingress
 * (docs/kv.md has the wire). Every operation is checked here, whatever the tab claims:
 * - the app it names must be one this host may serve, and the binding one that app's active
 *   version declares; the namespace is derived from both, so a handler can never name another
 *   app's data;
 * - keys, values, metadata, expirations and list options are held to {@link KvLimits}.
 * Answers: a response head (200 with the value, 204, 404), or a RESET carrying the KV_* code.
 */
import { DcdnError, errorCodeOf, KV_HEADERS as H, streamBody, type ErrorCode, type HeaderList, type Stream } from '../../protocol/index.ts';
import { checkKey, checkList, checkMetadata, expirationOf, KV_LIMITS, type KvLimits } from './limits.ts';
import type { KvStore } from './store.ts';

/** The namespace that holds `binding` of `app`. App names are DNS labels, bindings identifiers. */
export function namespaceOf(app: string, binding: string): string {
  return `${app}:${binding}`;
}

export interface KvServiceOptions {
  store: KvStore;
  limits?: Partial<KvLimits>;
  /** The KV bindings of the app's active version; undefined when there is no such app. */
  bindings(app: string): readonly string[] | undefined;
  /** Clock in ms (tests move it). Default Date.now. */
  now?: () => number;
  /**
   * Longest wait for the tab while a value streams: for the next chunk of a put, or for credit
   * to send the next chunk of a get. Past it the operation fails with KV_TIMEOUT and its stream
   * is reset, so a stalled or hostile tab cannot hold a store operation open. Default 30000 ms.
   */
  idleTimeoutMs?: number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  /**
   * Called once per operation when it is over, for metrics: its kind (`invalid` when it could
   * not be parsed), its KV_ code or null when it succeeded, and how long it took in seconds.
   */
  onop?: (op: string, code: string | null, seconds: number) => void;
}

/** Who opened the stream, as the ingress knows it (not as the tab says). */
export interface KvCaller {
  host: string;
  /** Whether this host may run (and so touch the data of) `app`. */
  mayUse(app: string): boolean;
}

export interface KvStats {
  gets: number;
  puts: number;
  deletes: number;
  lists: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
}

type Op =
  | { kind: 'get' | 'delete'; namespace: string; key: string }
  | { kind: 'put'; namespace: string; key: string; expiration?: number; metadata?: string }
  | { kind: 'list'; namespace: string; prefix: string; limit: number; cursor?: string };

export class KvService {
  readonly stats: KvStats = { gets: 0, puts: 0, deletes: 0, lists: 0, errors: 0, bytesIn: 0, bytesOut: 0 };
  readonly limits: KvLimits;
  readonly #opts: KvServiceOptions;
  readonly #now: () => number;
  readonly #idleMs: number;

  constructor(options: KvServiceOptions) {
    this.#opts = options;
    this.limits = { ...KV_LIMITS, ...options.limits };
    this.#now = options.now ?? Date.now;
    this.#idleMs = options.idleTimeoutMs ?? 30_000;
  }

  get store(): KvStore {
    return this.#opts.store;
  }

  /** Answers one KV stream; never throws (failures become a RESET with their code). */
  async serve(stream: Stream, caller: KvCaller): Promise<void> {
    const started = performance.now();
    let kind = 'invalid';
    try {
      const op = this.#parse(stream, caller);
      kind = op.kind;
      await this.#run(op, stream);
      this.#opts.onop?.(kind, null, (performance.now() - started) / 1000);
    } catch (err) {
      const code: ErrorCode = errorCodeOf(err) ?? 'KV_STORE_UNAVAILABLE';
      this.#opts.onop?.(kind, code, (performance.now() - started) / 1000);
      this.stats.errors++;
      if (code === 'KV_STORE_UNAVAILABLE') this.#opts.log?.('warn', 'kv store failed', { host: caller.host, error: (err as Error).message });
      stream.reset(code, (err as Error).message ?? String(err));
    }
  }

  #parse(stream: Stream, caller: KvCaller): Op {
    const { method, url, app = '', headers } = stream.request;
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const parts = path.split('/'); // ['', 'kv', BINDING, KEY?]
    if (parts.length < 3 || parts.length > 4 || parts[0] !== '' || parts[1] !== 'kv') throw new DcdnError('KV_BAD_REQUEST', 'KV paths are /kv/BINDING/KEY or /kv/BINDING?…');
    const binding = parts[2]!;
    if (!app || !caller.mayUse(app)) throw new DcdnError('KV_FORBIDDEN', `host ${caller.host} may not use the namespaces of app ${JSON.stringify(app)}`);
    if (!this.#opts.bindings(app)?.includes(binding)) throw new DcdnError('KV_UNKNOWN_BINDING', `app ${app} has no KV binding ${JSON.stringify(binding.slice(0, 64))}`);
    const namespace = namespaceOf(app, binding);
    if (parts.length === 3) {
      if (method !== 'GET') throw new DcdnError('KV_BAD_REQUEST', `${method} on a namespace; only GET (list) is allowed`);
      return this.#parseList(namespace, query === -1 ? '' : url.slice(query + 1));
    }
    const key = this.#parseKey(parts[3]!);
    switch (method) {
      case 'GET':
        return { kind: 'get', namespace, key };
      case 'DELETE':
        return { kind: 'delete', namespace, key };
      case 'PUT': {
        const expiration = this.#parseExpiration(headers);
        const metadata = this.#parseMetadata(headers);
        return { kind: 'put', namespace, key, ...(expiration !== undefined ? { expiration } : {}), ...(metadata !== undefined ? { metadata } : {}) };
      }
      default:
        throw new DcdnError('KV_BAD_REQUEST', `unknown KV method ${method}`);
    }
  }

  #parseKey(encoded: string): string {
    let key: string;
    try {
      key = decodeURIComponent(encoded);
    } catch {
      throw new DcdnError('KV_BAD_KEY', 'the key is not valid percent-encoded UTF-8');
    }
    return checkKey(key, this.limits);
  }

  #parseExpiration(headers: HeaderList): number | undefined {
    return expirationOf(header(headers, H.expirationTtl), header(headers, H.expiration), this.#now(), this.limits);
  }

  #parseMetadata(headers: HeaderList): string | undefined {
    const json = header(headers, H.metadata);
    return json === undefined ? undefined : checkMetadata(json, this.limits);
  }

  #parseList(namespace: string, query: string): Op {
    const q = new URLSearchParams(query);
    const prefix = q.get('prefix') ?? '';
    const limitText = q.get('limit');
    const limit = limitText === null ? this.limits.listLimit : Number(limitText);
    const cursor = q.get('cursor') ?? undefined;
    checkList(prefix, limit, cursor, this.limits);
    return { kind: 'list', namespace, prefix, limit, ...(cursor !== undefined ? { cursor } : {}) };
  }

  async #run(op: Op, stream: Stream): Promise<void> {
    const store = this.#opts.store;
    switch (op.kind) {
      case 'get': {
        this.stats.gets++;
        const entry = await store.get(op.namespace, op.key);
        if (!entry) return stream.respond({ status: 404, headers: [] }, true);
        const headers: HeaderList = [['content-length', String(entry.size)]];
        if (entry.expiration !== undefined) headers.push([H.expiration, String(entry.expiration)]);
        if (entry.metadata !== undefined) headers.push([H.metadata, entry.metadata]);
        stream.respond({ status: 200, headers }, entry.size === 0);
        if (entry.size === 0) return;
        for await (const chunk of entry.chunks()) {
          await this.#idle(stream.write(chunk), 'the tab took no more of the value');
          this.stats.bytesOut += chunk.byteLength;
        }
        return stream.end();
      }
      case 'put': {
        this.stats.puts++;
        const body = stream.requestHasBody ? this.#counted(streamBody(stream)) : emptyBody();
        await store.put(op.namespace, op.key, body, {
          maxValueBytes: this.limits.valueBytes,
          ...(op.expiration !== undefined ? { expiration: op.expiration } : {}),
          ...(op.metadata !== undefined ? { metadata: op.metadata } : {}),
        });
        return stream.respond({ status: 204, headers: [] }, true);
      }
      case 'delete':
        this.stats.deletes++;
        await store.delete(op.namespace, op.key);
        return stream.respond({ status: 204, headers: [] }, true);
      case 'list': {
        this.stats.lists++;
        const result = await store.list(op.namespace, { prefix: op.prefix, limit: op.limit, ...(op.cursor !== undefined ? { cursor: op.cursor } : {}) });
        const json = JSON.stringify({
          keys: result.keys.map((k) => ({ name: k.name, ...(k.expiration !== undefined ? { expiration: k.expiration } : {}), ...(k.metadata !== undefined ? { metadata: JSON.parse(k.metadata) as unknown } : {}) })),
          list_complete: result.listComplete,
          ...(result.cursor !== undefined ? { cursor: result.cursor } : {}),
        });
        const bytes = Buffer.from(json);
        stream.respond({ status: 200, headers: [['content-type', 'application/json'], ['content-length', String(bytes.byteLength)]] });
        await stream.write(bytes);
        this.stats.bytesOut += bytes.byteLength;
        return stream.end();
      }
    }
  }

  async *#counted(body: AsyncIterableIterator<Uint8Array>): AsyncIterable<Uint8Array> {
    for (;;) {
      const next = await this.#idle(body.next(), 'the tab sent no more of the value');
      if (next.done) return;
      this.stats.bytesIn += next.value.byteLength;
      yield next.value;
    }
  }

  /** `work`, or KV_TIMEOUT if it has not settled within the idle timeout. */
  #idle<T>(work: Promise<T>, what: string): Promise<T> {
    work.catch(() => {}); // it may fail after the timeout won (the stream is reset then)
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new DcdnError('KV_TIMEOUT', `${what} for ${this.#idleMs} ms`)), this.#idleMs);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }
}

function header(headers: HeaderList, name: string): string | undefined {
  return headers.find(([n]) => n === name)?.[1];
}

async function* emptyBody(): AsyncIterable<Uint8Array> {}
