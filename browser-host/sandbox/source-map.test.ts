import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleApp } from '../build/bundle.ts';
import { SourceMap } from './source-map.ts';

describe('SourceMap', () => {
  it('maps a position in a bundle esbuild made back to the line of the user\'s file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dcdn-srcmap-'));
    writeFileSync(join(dir, 'helper.ts'), 'export const greet = (n: string): string => `hi ${n}`;\n');
    writeFileSync(
      join(dir, 'worker.ts'),
      [
        "import { greet } from './helper.ts';",
        'interface Env { X?: string }',
        'export default {',
        '  fetch(_req: Request, _env: Env): Response {',
        "    if (greet('a')) throw new Error('boom');",
        "    return new Response('never');",
        '  },',
        '};',
        '',
      ].join('\n'),
    );
    const code = await bundleApp(join(dir, 'worker.ts'));
    const map = SourceMap.fromBundle(code)!;
    expect(map).not.toBeNull();
    const lines = code.split('\n');
    const line = lines.findIndex((l) => l.includes("throw new Error(\"boom\")")) + 1;
    const column = lines[line - 1]!.indexOf('throw') + 1;
    const pos = map.originalPosition(line, column);
    expect(pos?.source).toMatch(/(^|\/)worker\.ts$/);
    expect(pos?.line).toBe(5);
    const stack = `Error: boom\n    at Object.fetch (blob:http://x/abc:${line}:${column})\n    at other (blob:http://x/zzz:1:1)`;
    expect(map.mapStack(stack, 'blob:http://x/abc')).toMatch(/at Object\.fetch \((\S*\/)?worker\.ts:5:\d+\)\n    at other \(blob:http:\/\/x\/zzz:1:1\)$/);
  });

  it('is null for a bundle without an inline map', () => {
    expect(SourceMap.fromBundle('export default {}')).toBeNull();
  });
});
