/**
 * Reads the whole body of an answer from the ingress, for the calls whose answer is small and
 * wanted at once (a KV text/json/arrayBuffer get, a SQL result, a Cache API error). KV, SQL and
 * the Cache API share the transport (namespace.ts, session-transport.ts), so they share this too.
 *
 * Runtime-neutral: bundled into sandbox workers with namespace.ts, so it takes a leaf of protocol/.
 */
import { concatBytes } from '../../protocol/bytes.ts';
import type { KvAnswer } from './namespace.ts';

/** The body's bytes: empty for none, the bytes themselves when small, else the stream read to its end. */
export async function readAnswerBody(body: KvAnswer['body']): Promise<Uint8Array> {
  if (body === null) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  const chunks: Uint8Array[] = [];
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return concatBytes(chunks);
}
