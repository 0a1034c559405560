/**
 * The wire's limits on a head, as one check both senders run before they send.
 *
 * The decoder (codec.ts) refuses a head past these limits, and a refused head can only fail its
 * stream: the ingress would answer a client 502 for a request it could have refused with a
 * precise 414 or 431, and a tab would fail a handler's response in a way that blames nobody in
 * particular. So the side that builds a head checks it against the same figures first: the
 * ingress before it contacts any host (414/431), the tab before it sends a handler's response
 * (`HOST_BAD_HANDLER_RESPONSE`).
 */
import { LIMITS, type HeaderList } from './frames.ts';

/** Which limit a head breaks: `url` maps to 414, `headers` to 431 (request) or 502 (response). */
export interface HeadProblem {
  field: 'url' | 'headers';
  message: string;
}

/**
 * Why a head with this URL (pass '' for a response head) and these headers would be refused by
 * the peer's decoder, or null when it fits: header count, the length of each name and value, and
 * the head's total size (`LIMITS.headBytes`, which also keeps a head inside one channel message).
 */
export function headProblem(url: string, headers: HeaderList): HeadProblem | null {
  if (url.length > LIMITS.urlLength) return { field: 'url', message: `the URL is ${url.length} characters; the wire carries at most ${LIMITS.urlLength}` };
  if (headers.length > LIMITS.headerCount) return { field: 'headers', message: `${headers.length} header lines; the wire carries at most ${LIMITS.headerCount}` };
  let total = url.length;
  for (const [name, value] of headers) {
    if (name.length > LIMITS.headerLength || value.length > LIMITS.headerLength) {
      return { field: 'headers', message: `header ${JSON.stringify(name.slice(0, 40))} is ${Math.max(name.length, value.length)} characters long; the wire carries at most ${LIMITS.headerLength} per name or value` };
    }
    total += name.length + value.length;
  }
  if (total > LIMITS.headBytes) return { field: 'headers', message: `the head is ${total} characters; the wire carries at most ${LIMITS.headBytes}` };
  return null;
}
