/**
 * Default memory limit of each renderer of a host tab, so of each app's sandbox, in MiB
 * (Cloudflare Workers: 128; launch.ts `heapLimitMb` says how it is enforced). Its own module so
 * that `dcdn --help` can print it without loading puppeteer.
 */
export const DEFAULT_HEAP_LIMIT_MB = 512;
