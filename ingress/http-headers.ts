import { BlockList, isIP } from 'node:net';
import type { HeaderList } from '../protocol/index.ts';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) and the ones proxies must not pass on. They describe
 * one connection, not the message, so they are dropped in both directions, together with every
 * header the `Connection` header names.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** RFC 9110 §5.6.2 token: what a header name may be made of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values may hold visible characters, spaces and tabs, nothing that splits a line. */
const BAD_VALUE = /[\0\r\n]/;

/** Who may set X-Forwarded-* for the ingress: addresses of proxies in front of it. */
export interface ForwardingPolicy {
  /** Whether the socket peer `address` is a proxy whose X-Forwarded-* headers are believed. */
  isTrustedProxy: (address: string) => boolean;
  /** `http` or `https`, as the ingress itself is reached. */
  protocol: string;
}

/**
 * Turns a list of trusted proxies into a matcher. Entries are addresses (`10.0.0.7`, `::1`) or
 * CIDR ranges (`10.0.0.0/8`, `fd00::/8`); an IPv4 peer reaching a dual-stack socket as
 * `::ffff:10.0.0.7` matches its IPv4 entry. A malformed entry throws, so a typo in the
 * configuration is found at startup rather than by trusting nobody.
 *
 * @example
 * ```ts
 * const trusted = trustedProxyMatcher(['127.0.0.1', '10.0.0.0/8']);
 * trusted('10.1.2.3'); // true
 * ```
 */
export function trustedProxyMatcher(entries: readonly string[]): (address: string) => boolean {
  if (entries.length === 0) return () => false;
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', bits, extra] = entry.trim().split('/');
    const family = isIP(address);
    const prefix = bits === undefined ? undefined : Number(bits);
    const max = family === 4 ? 32 : 128;
    if (family === 0 || extra !== undefined || (prefix !== undefined && !(Number.isInteger(prefix) && prefix >= 0 && prefix <= max && /^\d+$/.test(bits!)))) {
      throw new Error(`trusted proxy ${JSON.stringify(entry)} is not an IP address or CIDR range`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, prefix, type);
  }
  return (address) => {
    const plain = unmapIPv4(address);
    const family = isIP(plain);
    return family !== 0 && list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  };
}

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) as `1.2.3.4`; anything else as it is. */
function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return m ? m[1]! : address;
}

/**
 * The request headers a host receives: Node's raw header list minus hop-by-hop headers, with
 * X-Forwarded-For/-Proto/-Host set from the socket. A client's own X-Forwarded-* headers are
 * kept only when the socket peer is a trusted proxy (RFC 7239 §8.1 spells out why).
 */
export function forwardRequestHeaders(rawHeaders: readonly string[], remoteAddress: string, policy: ForwardingPolicy): HeaderList {
  const named = connectionTokens(rawHeaders);
  const trusted = remoteAddress !== '' && policy.isTrustedProxy(remoteAddress);
  const out: HeaderList = [];
  let xff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let host = '';
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    if (HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (name === 'host') host = value;
    if (name === 'x-forwarded-for') {
      if (trusted) xff = xff ? `${xff}, ${value}` : value;
      continue;
    }
    if (name === 'x-forwarded-proto') {
      if (trusted) xfProto = value;
      continue;
    }
    if (name === 'x-forwarded-host') {
      if (trusted) xfHost = value;
      continue;
    }
    if ((name === 'forwarded' || name === 'x-forwarded-prefix') && !trusted) continue;
    out.push([name, value]);
  }
  const peer = unmapIPv4(remoteAddress);
  out.push(['x-forwarded-for', xff ? `${xff}, ${peer}` : peer]);
  out.push(['x-forwarded-proto', xfProto ?? policy.protocol]);
  if (xfHost ?? host) out.push(['x-forwarded-host', xfHost ?? host]);
  return out;
}

/** Why a host's response head cannot be forwarded, or null when it can. */
export function checkResponseHead(status: number, headers: HeaderList): string | null {
  if (!Number.isInteger(status) || status < 200 || status > 599) return `status ${status} is outside 200-599`;
  let lengths = 0;
  for (const [name, value] of headers) {
    if (!TOKEN.test(name)) return `header name ${JSON.stringify(name.slice(0, 40))} is not a token`;
    if (BAD_VALUE.test(value)) return `header ${name} has CR, LF or NUL in its value`;
    if (name.toLowerCase() === 'content-length') {
      lengths++;
      if (!/^\d{1,15}$/.test(value.trim())) return `content-length ${JSON.stringify(value.slice(0, 40))} is not a number`;
    }
  }
  if (lengths > 1) return 'more than one content-length';
  return null;
}

/**
 * The response headers sent to the client: the host's, minus hop-by-hop ones, plus dcdn's own.
 * Returned flat (`[name, value, name, value]`) as `writeHead` takes it, keeping repeats.
 */
export function forwardResponseHeaders(headers: HeaderList, extra: HeaderList): string[] {
  const named = new Set<string>();
  for (const [name, value] of headers) if (name.toLowerCase() === 'connection') for (const t of value.split(',')) named.add(t.trim().toLowerCase());
  const flat: string[] = [];
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower) || lower.startsWith('dcdn-')) continue;
    flat.push(name, value);
  }
  for (const [name, value] of extra) flat.push(name, value);
  return flat;
}

/** The declared content-length of a response, if it has one. */
export function declaredLength(headers: HeaderList): number | undefined {
  for (const [name, value] of headers) if (name.toLowerCase() === 'content-length') return Number(value.trim());
  return undefined;
}

function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const named = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue;
    for (const t of rawHeaders[i + 1]!.split(',')) {
      const token = t.trim().toLowerCase();
      if (token) named.add(token);
    }
  }
  return named;
}
