import { describe, expect, it } from 'vitest';
import { clusterOptionsFromFlags } from './cluster-flags.ts';

describe('dcdn signal cluster flags', () => {
  it('leave signaling alone on one machine without --cluster, with K = 2', () => {
    expect(clusterOptionsFromFlags({})).toEqual({ attach: 2 });
  });

  it('read --cluster, --cluster-name, --node-id, --region and --attach', () => {
    expect(clusterOptionsFromFlags({ cluster: 'redis://10.0.0.2:6379', 'cluster-name': 'eu1', 'node-id': 'sig-1', region: 'eu', attach: '3' })).toEqual({
      cluster: { url: 'redis://10.0.0.2:6379', clusterName: 'eu1', nodeId: 'sig-1', region: 'eu' },
      attach: 3,
    });
  });

  it('refuse what cannot work, naming the flag', () => {
    expect(() => clusterOptionsFromFlags({ cluster: 'http://10.0.0.2' })).toThrow(/--cluster/);
    expect(() => clusterOptionsFromFlags({ cluster: 'redis://x', 'node-id': 'a b' })).toThrow(/--node-id/);
    expect(() => clusterOptionsFromFlags({ attach: '9' })).toThrow(/--attach/);
    expect(() => clusterOptionsFromFlags({ attach: '0' })).toThrow(/--attach/);
    expect(() => clusterOptionsFromFlags({ 'node-id': 'a' })).toThrow(/needs --cluster/);
  });
});
