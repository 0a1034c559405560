/**
 * Byte ranges over keys and list cursors, shared by the backends: keys are ordered by their
 * UTF-8 bytes, and a cursor is the last listed key's UTF-8 bytes in base64url.
 */
import { DcdnError } from '../../protocol/index.ts';

/** Above every valid UTF-8 key: the byte 0xFF never occurs in UTF-8. */
export const AFTER_ALL = Buffer.from([0xff]);

/** The least byte string above every string starting with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const byte = prefix[i]!;
    if (byte < 0xff) return Buffer.concat([prefix.subarray(0, i), Buffer.from([byte + 1])]);
  }
  return AFTER_ALL;
}

/** The cursor that resumes a listing after `key`. */
export function encodeCursor(key: string | Buffer): string {
  return (typeof key === 'string' ? Buffer.from(key, 'utf8') : key).toString('base64url');
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A cursor's key bytes; anything but a cursor list() returned is KV_BAD_LIST. */
export function decodeCursor(cursor: string): Buffer {
  const bytes = Buffer.from(cursor, 'base64url');
  let valid = /^[A-Za-z0-9_-]+$/.test(cursor) && bytes.toString('base64url') === cursor;
  try {
    if (valid) UTF8.decode(bytes);
  } catch {
    valid = false;
  }
  if (!valid) throw new DcdnError('KV_BAD_LIST', 'the cursor is not one that list() returned');
  return bytes;
}
