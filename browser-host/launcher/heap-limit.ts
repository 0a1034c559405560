/**
 * Default heap limit per isolate of a host tab's renderers, in MiB (Cloudflare Workers: 128).
 * Its own module so that `dcdn --help` can print it without loading puppeteer.
 */
export const DEFAULT_HEAP_LIMIT_MB = 512;
