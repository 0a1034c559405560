import { isIP } from 'node:net';
import type { ErrorCode } from '../protocol/index.ts';

/** A request target and Host the ingress will forward, or why it won't. */
export type TargetResult =
  | {
      /** The authority the handler's URL carries: the Host header, validated (lowercased). */
      authority: string;
      /** Origin-form path and query, normalised as the handler's URL will have them. */
      path: string;
    }
  | { error: ErrorCode; message: string };

/** Longest host name in an authority (RFC 1035: 253 characters, plus a trailing dot). */
const MAX_HOSTNAME = 254;
const HOSTNAME = /^[A-Za-z0-9_](?:[A-Za-z0-9._~-]*)$/;
const IPV6_LITERAL = /^\[([0-9A-Fa-f:.]+)\]$/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

/**
 * Why `host` is not a valid authority (`uri-host [":" port]`, RFC 9112 §3.2, RFC 3986 §3.2), or
 * null. Refused: userinfo (`user@host`), a path, query or fragment, spaces, percent-encoding and
 * other characters no DNS name or address has, an empty host, and a port that is not 1 to 5
 * digits up to 65535. IPv6 addresses come in brackets, without a zone.
 */
export function authorityProblem(host: string): string | null {
  if (host.length === 0) return 'the Host header is empty';
  let name = host;
  let port: string | undefined;
  const colon = host.lastIndexOf(':');
  if (colon !== -1 && (host.startsWith('[') ? host.indexOf(']') < colon : true)) {
    name = host.slice(0, colon);
    port = host.slice(colon + 1);
  }
  if (port !== undefined && !(/^\d{1,5}$/.test(port) && Number(port) <= 65535)) return `the Host header's port ${JSON.stringify(port.slice(0, 20))} is not a port number`;
  const v6 = IPV6_LITERAL.exec(name);
  if (v6) return isIP(v6[1]!) === 6 ? null : 'the Host header holds a malformed IPv6 address';
  if (name.length === 0) return 'the Host header names no host';
  if (name.length > MAX_HOSTNAME) return `the Host header's host name is longer than ${MAX_HOSTNAME} characters`;
  if (!HOSTNAME.test(name)) {
    if (name.includes('@')) return 'the Host header holds userinfo (user@host)';
    return `the Host header ${JSON.stringify(host.slice(0, 60))} is not a host name or address (a path, query, space or other character no host name has)`;
  }
  return null;
}

/**
 * Decides what the handler's URL will be: `<protocol>://<Host><path>`, where path is the
 * request's own path whatever its target looks like (RFC 9112 §3.2):
 *
 * - origin-form (`/path?q`) is always a path, so `//evil.example/admin` is the path
 *   `//evil.example/admin` on this Host, never a scheme-relative URL to another host;
 * - absolute-form (`http://host/path`) is served only when its scheme is http or https and its
 *   authority is the Host header, so the Host the app sees and the URL's authority never
 *   disagree; another authority or scheme is 400;
 * - asterisk-form (`OPTIONS *`) and authority-form (`host:port` without CONNECT) ask about the
 *   server, not an app's resource: 400.
 *
 * A backslash or `#` in a target is 400 (no target may hold them; URL parsers read `\` as `/`
 * and `#` as the start of a fragment, so the app would see another path than the client sent).
 * Dot segments (`/a/../b`, `%2e%2e`) are resolved here, before routing, so the path the router
 * decides on is the path the handler sees. (Bytes above 0x7f and controls never get here: Node's
 * parser refuses them in a request line.)
 */
export function resolveTarget(target: string, host: string, protocol: string): TargetResult {
  const hostProblem = authorityProblem(host);
  if (hostProblem) return { error: 'INGRESS_BAD_HOST', message: hostProblem };
  let path: string;
  if (target.startsWith('/')) {
    path = target;
  } else if (target === '*') {
    return { error: 'INGRESS_BAD_REQUEST', message: 'asterisk-form targets (OPTIONS *) ask about the server itself and are not forwarded to an app' };
  } else {
    const scheme = SCHEME.exec(target);
    if (!scheme) return { error: 'INGRESS_BAD_REQUEST', message: 'the request target is neither a path (/path) nor an absolute http(s) URL' };
    const name = scheme[1]!.toLowerCase();
    if (name !== 'http' && name !== 'https') return { error: 'INGRESS_BAD_REQUEST', message: `absolute-form targets with scheme ${JSON.stringify(name.slice(0, 20))} are not served: only http and https` };
    const rest = target.slice(scheme[0].length);
    const end = rest.search(/[/?#\\]/);
    const authority = end === -1 ? rest : rest.slice(0, end);
    if (authority.toLowerCase() !== host.toLowerCase()) {
      return { error: 'INGRESS_BAD_REQUEST', message: 'an absolute-form target must name the same authority as the Host header' };
    }
    path = end === -1 ? '/' : rest.slice(end);
    if (!path.startsWith('/')) path = `/${path}`;
  }
  if (path.includes('\\')) return { error: 'INGRESS_BAD_REQUEST', message: 'a backslash is not allowed in a request target (encode it as %5C)' };
  if (path.includes('#')) return { error: 'INGRESS_BAD_REQUEST', message: 'a fragment (#) is not part of a request target' };
  let url: URL;
  try {
    url = new URL(`${protocol}://${host}${path}`);
  } catch {
    return { error: 'INGRESS_BAD_REQUEST', message: 'the request target is not a valid URL path' };
  }
  return { authority: url.host, path: `${url.pathname}${url.search}` };
}
