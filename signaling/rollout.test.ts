import { describe, expect, it } from 'vitest';
import { describeRollout, rolloutOf } from './rollout.ts';

const target = { name: 'hello', version: 4, sha256: 'bbbb' };

describe('rolloutOf', () => {
  it('counts a host live only when it serves the target deployment, by id where it reports one', () => {
    const r = rolloutOf(target, [
      { host: 'tab-1', apps: [{ name: 'hello', version: 4, state: 'serving', sha256: 'bbbb' }] },
      // Same version, old secrets: not live yet.
      { host: 'tab-2', apps: [{ name: 'hello', version: 4, state: 'loading', sha256: 'bbbb' }, { name: 'hello', version: 4, state: 'serving', sha256: 'aaaa' }] },
      { host: 'tab-3', apps: [{ name: 'hello', version: 4, state: 'failed', sha256: 'bbbb' }, { name: 'hello', version: 3, state: 'serving', sha256: 'cccc' }] },
      // An older host build without ids: matched by version.
      { host: 'tab-4', apps: [{ name: 'hello', version: 4, state: 'serving' }] },
      { host: 'tab-5', apps: [{ name: 'other', version: 4, state: 'serving', sha256: 'bbbb' }] },
    ]);
    expect(r).toEqual({
      app: 'hello',
      version: 4,
      sha256: 'bbbb',
      live: 2,
      total: 5,
      settled: false,
      hosts: [
        { host: 'tab-1', state: 'live', serving: 4 },
        { host: 'tab-2', state: 'loading', serving: 4 },
        { host: 'tab-3', state: 'failed', serving: 3 },
        { host: 'tab-4', state: 'live', serving: 4 },
        { host: 'tab-5', state: 'loading', serving: null },
      ],
    });
  });

  it('is settled when no host is still loading, and with no host at all', () => {
    expect(rolloutOf(target, []).settled).toBe(true);
    expect(rolloutOf(target, [{ host: 'a', apps: [{ name: 'hello', version: 4, state: 'failed', sha256: 'bbbb' }] }]).settled).toBe(true);
  });
});

describe('describeRollout', () => {
  it('prints live on N/N hosts, then each host that lags or failed and what it still serves', () => {
    expect(describeRollout({ live: 2, total: 2, hosts: [] })).toBe('live on 2/2 hosts');
    expect(
      describeRollout({
        live: 1,
        total: 3,
        hosts: [
          { host: 'tab-1', state: 'live', serving: 4 },
          { host: 'tab-2', state: 'loading', serving: 3 },
          { host: 'tab-3', state: 'failed', serving: null },
        ],
      }),
    ).toBe('live on 1/3 hosts; tab-2 still loading (serving v3), tab-3 failed to load it');
  });
});
