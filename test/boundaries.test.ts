import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBoundaries, formatViolation, isBrowserHostNodeFile, readImports, type Violation } from '../tools/check-boundaries.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

describe('the import boundaries of this repository', () => {
  it('hold: no folder imports what docs/architecture.md forbids', () => {
    expect(checkBoundaries(ROOT).map(formatViolation)).toEqual([]);
  });
});

describe('readImports', () => {
  it('sees static, re-exported, type-only and dynamic imports, with their lines', () => {
    const source = ["import a from './a.ts';", "export { b } from './b.ts';", "import type { C } from 'ws';", 'const d = await import("./d.ts");'].join('\n');
    expect(readImports(source)).toEqual([
      { specifier: './a.ts', line: 1, dynamic: false },
      { specifier: './b.ts', line: 2, dynamic: false },
      { specifier: 'ws', line: 3, dynamic: false },
      { specifier: './d.ts', line: 4, dynamic: true },
    ]);
  });
});

describe('isBrowserHostNodeFile', () => {
  it('puts the launcher, the builder, the sandbox plugin and the index on the Node side, the rest in the page', () => {
    for (const f of ['browser-host/launcher/launch.ts', 'browser-host/build/bundle.ts', 'browser-host/sandbox/build.ts', 'browser-host/index.ts']) expect(isBrowserHostNodeFile(f), f).toBe(true);
    for (const f of ['browser-host/host-agent.ts', 'browser-host/sandbox/sandbox.ts', 'browser-host/kv/namespace.ts', 'browser-host/main.ts']) expect(isBrowserHostNodeFile(f), f).toBe(false);
  });
});

describe('a tree with planted violations', () => {
  let root: string;
  let found: Violation[];
  const plant = (file: string, source: string) => {
    mkdirSync(join(root, dirname(file)), { recursive: true });
    writeFileSync(join(root, file), source);
  };
  const at = (file: string) => found.filter((v) => v.file === file).map((v) => `${v.rule} ${v.specifier}`);

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'dcdn-boundaries-'));
    plant('protocol/index.ts', "export * from './wire.ts';\n");
    plant('protocol/wire.ts', "import { readFileSync } from 'node:fs';\nimport { Packr } from 'msgpackr';\nimport { x } from '../signaling/index.ts';\n");
    plant('protocol/dom.ts', "import 'puppeteer-core';\n");
    plant('protocol/wire.test.ts', "import { readFileSync } from 'node:fs';\nimport { startRedis } from '../tools/redis.ts';\n");
    plant('ingress/index.ts', "import { SignalingClient } from '../signaling/client.ts';\nimport { AppRef } from '../protocol/index.ts';\n");
    plant('ingress/deep.ts', "import { Session } from '../protocol/session.ts';\n");
    plant('signaling/index.ts', "const i = await import('../ingress/index.ts');\n");
    plant('browser-host/host-agent.ts', "import { WebSocket } from 'ws';\nimport { Session } from '../protocol/index.ts';\nimport { launch } from './launcher/launch.ts';\nimport rt from 'dcdn:sandbox-runtime';\n");
    plant('browser-host/launcher/launch.ts', "import puppeteer from 'puppeteer-core';\nimport { spawn } from 'node:child_process';\n");
    plant('browser-host/sandbox/messages.ts', "import { LIMITS } from '../../protocol/frames.ts';\n");
    plant('ingress/kv/store.ts', "import { liveBytes } from '../../test/live-memory.ts';\nimport { suite } from './store.test.ts';\n");
    plant('node/index.ts', "import { main } from '../cli/main.ts';\nimport { createIngress } from '../ingress/index.ts';\n");
    plant('cli/main.ts', "import { runBench } from '../bench/index.ts';\nconst lazy = () => import('../bench/index.ts');\nimport { startSignal } from '../node/index.ts';\nimport { HostPool } from '../ingress/host-pool.ts';\n");
    plant('bench/servers/dcdn.ts', "import { startSignal } from '../../cli/parts.ts';\nimport { startRedis } from '../../test/redis.ts';\nimport { startRedis as ok } from '../../tools/redis.ts';\nimport { HostPool } from '../../ingress/host-pool.ts';\n");
    plant('test/e2e.test.ts', "import { main } from '../cli/main.ts';\nimport { HostPool } from '../ingress/host-pool.ts';\n");
    found = checkBoundaries(root);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reports protocol/ importing the repository, a Node built-in or a package not known to be neutral', () => {
    expect(at('protocol/wire.ts')).toEqual(['protocol-pure node:fs', 'protocol-pure ../signaling/index.ts']);
    expect(at('protocol/dom.ts')).toEqual(['protocol-pure puppeteer-core']);
  });

  it('reports the ingress importing signaling, in either direction, dynamic imports too', () => {
    expect(at('ingress/index.ts')).toEqual(['data-plane-apart ../signaling/client.ts']);
    expect(at('signaling/index.ts')).toEqual(['data-plane-apart ../ingress/index.ts']);
  });

  it("reports page code importing Node modules or browser-host's Node side, and lets the Node side use Node", () => {
    expect(at('browser-host/host-agent.ts')).toEqual(['page-neutral ws', 'page-neutral ./launcher/launch.ts']);
    expect(at('browser-host/launcher/launch.ts')).toEqual([]);
  });

  it('reports shipped code importing test code or a test file, and node/ importing cli/', () => {
    expect(at('ingress/kv/store.ts')).toEqual(['no-dev-code ../../test/live-memory.ts', 'no-test-files ./store.test.ts']);
    expect(at('node/index.ts')).toEqual(['no-dev-code ../cli/main.ts']);
  });

  it('lets cli/ load bench/ only lazily, and only through public faces', () => {
    expect(at('cli/main.ts')).toEqual(['cli-bench-lazy ../bench/index.ts', 'public-face ../ingress/host-pool.ts']);
  });

  it('reports bench/ importing cli/ or test/, and lets it use tools/ and reach internals', () => {
    expect(at('bench/servers/dcdn.ts')).toEqual(['no-dev-code ../../cli/parts.ts', 'no-dev-code ../../test/redis.ts']);
  });

  it('lets tests reach anything, and allows the named deep imports of sandbox worker code', () => {
    expect(at('test/e2e.test.ts')).toEqual([]);
    expect(at('protocol/wire.test.ts')).toEqual([]);
    expect(at('browser-host/sandbox/messages.ts')).toEqual([]);
  });

  it('reports deep imports from shipped code into another folder', () => {
    expect(at('ingress/deep.ts')).toEqual(['public-face ../protocol/session.ts']);
  });
});
