/**
 * Maps positions in an app's bundle back to the user's source files, from the inline source map
 * esbuild appends to every bundle (browser-host/build/bundle.ts, `sourcemap: 'inline'`), so an
 * uncaught exception in `dcdn tail` names `worker.ts:12:11`, not a position in a blob URL.
 *
 * Why here, in the sandbox worker: the tab is the one place that holds the bundle and its map
 * (the ingress never sees app code; the CLI and the dashboard would each have to fetch and
 * decode it), and the worker is the app's own thread, so the page that serves every app never
 * parses a map. The map is decoded lazily, on the first exception of a worker's life.
 *
 * Source Map v3 (https://tc39.es/ecma426/): `mappings` is lines separated by `;`, segments by
 * `,`, each segment base64 VLQ fields relative to the previous segment (the column relative
 * within its line only). No dependency: the decoder is the 40 lines below.
 */

/** One mapped segment: generated column, source index, original line and column (all 0-based). */
type Segment = [genCol: number, source: number, line: number, col: number];

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

/** A decoded source map; {@link SourceMap.fromBundle} finds the one inline in a bundle. */
export class SourceMap {
  readonly sources: string[];
  readonly #lines: Segment[][];

  constructor(map: { sources?: unknown; mappings?: unknown }) {
    this.sources = Array.isArray(map.sources) ? map.sources.map((s) => cleanSource(String(s))) : [];
    this.#lines = typeof map.mappings === 'string' ? decodeMappings(map.mappings) : [];
  }

  /** The map inline in `code` (a `//# sourceMappingURL=data:...;base64,` comment), or null. */
  static fromBundle(code: string): SourceMap | null {
    const at = code.lastIndexOf('//# sourceMappingURL=data:');
    if (at === -1) return null;
    const m = /^\/\/# sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/.exec(code.slice(at));
    if (!m) return null;
    try {
      const binary = atob(m[1]!);
      const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
      return new SourceMap(JSON.parse(new TextDecoder().decode(bytes)) as { sources?: unknown; mappings?: unknown });
    } catch {
      return null;
    }
  }

  /**
   * The original position of a 1-based line and column of the bundle (as V8's stack traces
   * give them), or null when it maps to nothing.
   */
  originalPosition(line: number, column: number): { source: string; line: number; column: number } | null {
    const segments = this.#lines[line - 1];
    if (!segments || segments.length === 0) return null;
    const col = column - 1;
    // The last segment starting at or before the column.
    let lo = 0;
    let hi = segments.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segments[mid]![0] <= col) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const s = segments[found === -1 ? 0 : found]!;
    const source = this.sources[s[1]];
    if (source === undefined) return null;
    return { source, line: s[2] + 1, column: s[3] + 1 };
  }

  /**
   * Rewrites every `URL:LINE:COL` of `url` (the bundle's module URL) in a stack trace to the
   * user's `file:line:col`; positions that map to nothing are left as they are.
   */
  mapStack(stack: string, url: string): string {
    if (!url) return stack;
    const pattern = new RegExp(`${escapeRegExp(url)}:(\\d+):(\\d+)`, 'g');
    return stack.replace(pattern, (whole, l: string, c: string) => {
      const p = this.originalPosition(Number(l), Number(c));
      return p ? `${p.source}:${p.line}:${p.column}` : whole;
    });
  }
}

function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let source = 0;
  let line = 0;
  let col = 0;
  let segments: Segment[] = [];
  let genCol = 0;
  let i = 0;
  const fields: number[] = [];
  while (i <= mappings.length) {
    const ch = mappings[i];
    if (ch === undefined || ch === ';' || ch === ',') {
      if (fields.length >= 4) {
        genCol += fields[0]!;
        source += fields[1]!;
        line += fields[2]!;
        col += fields[3]!;
        segments.push([genCol, source, line, col]);
      } else if (fields.length >= 1) genCol += fields[0]!;
      fields.length = 0;
      if (ch !== ',') {
        lines.push(segments);
        segments = [];
        genCol = 0;
      }
      i++;
      continue;
    }
    // One base64 VLQ value: 5 bits per digit, bit 6 continues, the lowest bit of the result is the sign.
    let value = 0;
    let shift = 0;
    for (;;) {
      const digit = B64_VALUE[mappings.charCodeAt(i++)] ?? -1;
      if (digit < 0) return lines; // malformed: keep what decoded
      value += (digit & 31) * 2 ** shift;
      shift += 5;
      if ((digit & 32) === 0) break;
    }
    fields.push(value % 2 === 1 ? -Math.floor(value / 2) : value / 2);
  }
  return lines;
}

/** `../../tmp/app/worker.ts` → `tmp/app/worker.ts`: the map's paths are relative to where it was built. */
function cleanSource(s: string): string {
  return s.replace(/^(?:\.\.?\/)+/, '');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
