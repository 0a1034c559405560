import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../protocol/index.ts';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
/** Rows of the tables: `| \`CODE\` | status | ...`. */
const documented = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));

describe('docs/errors.md', () => {
  it.each(Object.entries(ERRORS))('documents %s with its status', (code, { status }) => {
    expect(documented.get(code)).toBe(status);
  });

  it('documents no code the registry lacks', () => {
    expect([...documented.keys()].filter((c) => !(c in ERRORS))).toEqual([]);
  });
});
