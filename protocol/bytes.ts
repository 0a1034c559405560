/**
 * Byte arrays put back to back. A leaf with no imports, so the sandbox worker's code (which may
 * not pull in msgpackr with protocol/index.ts) can use it too.
 */

/** `parts` in one array; the part itself when there is only one (no copy). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let size = 0;
  for (const p of parts) size += p.byteLength;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
