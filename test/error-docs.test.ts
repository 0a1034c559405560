import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../protocol/index.ts';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
/** Rows of the tables: `| \`CODE\` | status | yes/no | blame | ...`. */
const documented = new Map(
  [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \| ([^|]*) \| ([^|]*) \|/gm)].map((m) => [m[1]!, { status: Number(m[2]), retryable: m[3]!.trim(), blame: m[4]!.trim() }]),
);

describe('docs/errors.md', () => {
  it.each(Object.entries(ERRORS))('documents %s with its status, retryability and blame', (code, entry) => {
    expect(documented.get(code)).toEqual({ status: entry.status, retryable: entry.retryable ? 'yes' : 'no', blame: entry.blame });
  });

  it('documents no code the registry lacks', () => {
    expect([...documented.keys()].filter((c) => !(c in ERRORS))).toEqual([]);
  });

  it('lists every code once', () => {
    const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]!);
    expect(rows.length).toBe(new Set(rows).size);
  });
});
