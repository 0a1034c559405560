/**
 * Makes a tab's `Request` and `Response` behave like a server runtime's.
 *
 * Browsers guard the headers of a `Request` (Cookie, Host, Origin, Referer and other forbidden
 * request-header names are silently dropped) and of a `Response` (Set-Cookie is dropped), as the
 * Fetch standard requires for pages (https://fetch.spec.whatwg.org/#forbidden-request-header).
 * A handler serving HTTP needs both, so the host gives each request an unguarded `Headers` and
 * installs a `Response` subclass whose headers are unguarded too. Server runtimes (workerd,
 * Deno, Node) behave this way.
 */

const RAW_HEADERS = Symbol.for('dcdn.rawHeaders');
const FIXED_BODY = Symbol.for('dcdn.fixedBody');
/** Bodies up to this size that were given as a string or bytes are kept as bytes too. */
const FIXED_BODY_BYTES = 64 * 1024;

/**
 * The browser's own Response class, captured before the shim replaces the global: both shim
 * instances and real `fetch()` responses are instances of it.
 */
export const NativeResponse: typeof Response = globalThis.Response;

/**
 * Builds a `Request` whose `headers` carries every header the ingress sent, in order, and whose
 * body is the given stream, read as it arrives.
 *
 * Chromium takes a `ReadableStream` as a request body (with `duplex: 'half'`). Firefox and Safari
 * do not yet: they accept the init and then read the body as empty. There the request is made
 * without a body and given the stream through its own `body`, `bodyUsed`, body readers and
 * `clone()`, so handlers see the same thing in every browser (measured: Firefox 153 read a
 * 3-byte stream body as 0 bytes).
 */
export function makeRequest(url: string, init: RequestInit & { duplex?: 'half' }, headers: Array<[string, string]>): Request {
  const body = init.body;
  if (body instanceof ReadableStream && !supportsStreamBodies()) {
    const raw = headersOf(headers);
    const { body: _dropped, duplex: _half, ...rest } = init;
    const request = new Request(url, { ...rest, headers: raw });
    Object.defineProperty(request, 'headers', { value: raw, enumerable: true });
    return withStreamBody(request, body as ReadableStream<Uint8Array>, raw);
  }
  // The Request checks the list and keeps what a page may see; the unguarded copy handlers see
  // is made the first time they look (many never do: a Headers per request is measurable).
  const request = new Request(url, { ...init, headers });
  let raw: Headers | null = null;
  Object.defineProperty(request, 'headers', { get: () => (raw ??= headersOf(headers)), enumerable: true });
  return request;
}

function headersOf(list: Array<[string, string]>): Headers {
  const headers = new Headers();
  for (const [name, value] of list) headers.append(name, value);
  return headers;
}

let streamBodies: boolean | undefined;

/** Whether this browser takes a ReadableStream as a Request body (the web.dev detection). */
export function supportsStreamBodies(): boolean {
  if (streamBodies !== undefined) return streamBodies;
  let duplexAccessed = false;
  try {
    const probe = new Request('https://example.invalid/', {
      body: new ReadableStream(),
      method: 'POST',
      get duplex() {
        duplexAccessed = true;
        return 'half';
      },
    } as RequestInit);
    // A browser that stringified the stream gave it a text/plain content type.
    streamBodies = duplexAccessed && !probe.headers.has('content-type');
  } catch {
    streamBodies = false;
  }
  return streamBodies;
}

/** Gives a bodiless request `stream` as its body (see {@link makeRequest}). */
function withStreamBody(request: Request, stream: ReadableStream<Uint8Array>, headers: Headers): Request {
  let used = false;
  const take = (): Response => {
    if (used || stream.locked) throw new TypeError('the request body has already been read');
    used = true;
    // A Response reads a stream body in every browser, and parses it the way a Request would.
    return new NativeResponse(stream, { headers: { 'content-type': headers.get('content-type') ?? '' } });
  };
  Object.defineProperties(request, {
    body: { get: () => stream, enumerable: true },
    bodyUsed: { get: () => used || stream.locked, enumerable: true },
    arrayBuffer: { value: () => tryTake(take).then((r) => r.arrayBuffer()) },
    text: { value: () => tryTake(take).then((r) => r.text()) },
    json: { value: () => tryTake(take).then((r) => r.json() as Promise<unknown>) },
    blob: { value: () => tryTake(take).then((r) => r.blob()) },
    formData: { value: () => tryTake(take).then((r) => r.formData()) },
    bytes: { value: () => tryTake(take).then((r) => r.arrayBuffer()).then((b) => new Uint8Array(b)) },
    clone: {
      value: () => {
        if (used || stream.locked) throw new TypeError('a request whose body was read cannot be cloned');
        const [a, b] = stream.tee();
        stream = a;
        const copy = new Request(request.url, { method: request.method, signal: request.signal, headers: new Headers(headers) });
        Object.defineProperty(copy, 'headers', { value: new Headers(headers), enumerable: true });
        return withStreamBody(copy, b, headers);
      },
    },
  });
  return request;
}

/** Runs `take` in a promise, so a second read rejects rather than throws, as Request's do. */
function tryTake(take: () => Response): Promise<Response> {
  try {
    return Promise.resolve(take());
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Replaces `globalThis.Response` with a subclass that keeps an unguarded copy of its headers,
 * so `Set-Cookie` survives. Idempotent.
 */
export function installResponseShim(scope: { Response: typeof Response } = globalThis): void {
  const Base = scope.Response;
  if ((Base as unknown as Record<symbol, unknown>)[RAW_HEADERS]) return;
  class ServerResponse extends Base {
    readonly #raw: Headers;
    readonly #fixed: Uint8Array | null;
    readonly #webSocket: unknown;
    constructor(body?: BodyInit | null, init?: ResponseInit & { webSocket?: unknown }) {
      // Workers' extension (https://developers.cloudflare.com/workers/runtime-apis/response/):
      // status 101 with the client end of a WebSocketPair accepts a WebSocket. The browser's
      // Response refuses statuses below 200, so such a response is made as a 200 and reports 101.
      const upgrade = init?.status === 101;
      if (upgrade && (init?.webSocket === undefined || init.webSocket === null)) throw new RangeError('a Response with status 101 needs a webSocket');
      if (!upgrade && init?.webSocket !== undefined && init.webSocket !== null) throw new RangeError('a Response with a webSocket must have status 101');
      super(body, upgrade ? { ...init, status: 200 } : init);
      this.#webSocket = upgrade ? init!.webSocket : null;
      const raw = new Headers(init?.headers);
      // The one header the browser derives from the body, Content-Type for strings, blobs and
      // forms (Fetch, "extract a body"); every other header it has came from init.headers.
      if (body !== null && body !== undefined && !raw.has('content-type')) {
        const type = super.headers.get('content-type');
        if (type !== null) raw.set('content-type', type);
      }
      this.#raw = raw;
      this.#fixed = fixedBytes(body);
    }
    /** The body as bytes when it was given whole (string, buffer) and small: see {@link fixedBody}. */
    get [FIXED_BODY](): Uint8Array | null {
      return this.#fixed;
    }
    override get headers(): Headers {
      return this.#raw;
    }
    // `#webSocket in this`: a clone() made by the base class has this prototype but no fields.
    override get status(): number {
      return #webSocket in this && this.#webSocket ? 101 : super.status;
    }
    override get ok(): boolean {
      return #webSocket in this && this.#webSocket ? false : super.ok;
    }
    override get statusText(): string {
      return #webSocket in this && this.#webSocket ? 'Switching Protocols' : super.statusText;
    }
    /** The client end of the WebSocketPair a 101 response accepts; null otherwise (Workers). */
    get webSocket(): unknown {
      return #webSocket in this ? this.#webSocket : null;
    }
    static override json(data: unknown, init?: ResponseInit): Response {
      const headers = new Headers(init?.headers);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return new ServerResponse(JSON.stringify(data), { ...init, headers });
    }
    static override redirect(url: string | URL, status = 302): Response {
      return new ServerResponse(null, { status, headers: { location: String(url) } });
    }
  }
  Object.defineProperty(ServerResponse, RAW_HEADERS, { value: true });
  Object.defineProperty(ServerResponse, 'name', { value: 'Response' });
  scope.Response = ServerResponse;
}

/**
 * The body of a response made with the shim from a string or bytes of at most 64 KiB, as a copy
 * of those bytes, while the body is unread; else null. A sandbox sends such a body whole rather
 * than as a transferred stream (a cross-realm pipe per response costs more than the bytes).
 */
export function fixedBody(response: Response): Uint8Array | null {
  if (response.bodyUsed) return null;
  return (response as unknown as Record<symbol, Uint8Array | null | undefined>)[FIXED_BODY] ?? null;
}

const encoder = new TextEncoder();

function fixedBytes(body: BodyInit | null | undefined): Uint8Array | null {
  let bytes: Uint8Array | null = null;
  if (typeof body === 'string') {
    if (body.length > FIXED_BODY_BYTES) return null; // at least as many bytes as characters
    bytes = encoder.encode(body);
  } else if (body instanceof ArrayBuffer) {
    bytes = new Uint8Array(body.slice(0));
  } else if (ArrayBuffer.isView(body)) {
    bytes = new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  }
  return bytes && bytes.byteLength <= FIXED_BODY_BYTES ? bytes : null;
}

/** Lists a response's headers in order, with each Set-Cookie kept separate. */
export function responseHeaderList(headers: Headers): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of headers) {
    if (name === 'set-cookie') continue;
    out.push([name, value]);
  }
  for (const cookie of headers.getSetCookie()) out.push(['set-cookie', cookie]);
  return out;
}

/** A header name as `Headers` lists it: a lowercase token. */
const LISTED_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** Bytes a header value may not hold (NUL, CR, LF, and code units a ByteString cannot). */
const BAD_VALUE = /[\0\r\n\u0100-\uffff]/;

/**
 * Whether `list` is already what {@link responseHeaderList} gives for a `Headers` holding its
 * lines: valid lowercase names in ascending order without repeats, Set-Cookie lines last,
 * values without surrounding whitespace. A sandbox's worker sends exactly such a list, and the
 * page can then pass it on without building a `Headers` to check and normalise it.
 */
export function isHeaderListCanonical(list: ReadonlyArray<readonly [string, string]>): boolean {
  let previous = '';
  let cookies = false;
  for (let i = 0; i < list.length; i++) {
    const [name, value] = list[i]!;
    if (typeof name !== 'string' || typeof value !== 'string') return false;
    if (name === 'set-cookie') cookies = true;
    else if (cookies || name <= previous || !LISTED_NAME.test(name)) return false;
    else previous = name;
    if (BAD_VALUE.test(value)) return false;
    if (value.length > 0) {
      const first = value.charCodeAt(0);
      const last = value.charCodeAt(value.length - 1);
      if (first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) return false;
    }
  }
  return true;
}
