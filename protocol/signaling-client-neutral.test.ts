import { readFileSync } from 'node:fs';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const entry = new URL('./signaling-client.ts', import.meta.url).pathname;

describe('the browser-facing client', () => {
  it('bundles for the browser without node: modules, ws, the server or the token module', async () => {
    const result = await build({ entryPoints: [entry], absWorkingDir: new URL('..', import.meta.url).pathname, bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent' });
    const inputs = Object.keys(result.metafile.inputs).sort();
    expect(inputs).toEqual(['protocol/app-config.ts', 'protocol/errors.ts', 'protocol/signaling-client.ts', 'protocol/signaling-errors.ts', 'protocol/signaling-messages.ts']);
  });

  it('uses no Node globals in the files it bundles', () => {
    for (const file of ['app-config.ts', 'signaling-client.ts', 'signaling-errors.ts', 'signaling-messages.ts']) {
      const source = readFileSync(new URL(`./${file}`, import.meta.url), 'utf8');
      expect(source, file).not.toMatch(/\b(Buffer|process|__dirname|setImmediate)\b|\brequire\(/);
    }
  });
});
