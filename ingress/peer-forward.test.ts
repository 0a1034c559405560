import { describe, expect, it } from 'vitest';
import { PlacementView } from './placement-view.ts';
import { rankPeers, signPeerRequest, verifyPeerRequest } from './peer-forward.ts';
import { OPERATOR_HOST, type HostTraits } from './host-traits.ts';
import type { KnownHost } from './host-connector.ts';

const KEY = 'k'.repeat(43);
const NOW = 1_765_000_000_000;

describe('the dcdn-peer signature', () => {
  it('verifies what it signed, naming the forwarder (dots in names included)', () => {
    for (const from of ['ingress-a', 'edge.eu-west.1']) {
      const header = signPeerRequest(KEY, from, 'POST', '/x?y=1', NOW);
      expect(verifyPeerRequest(KEY, header, 'POST', '/x?y=1', NOW, 30_000)).toEqual({ from });
    }
  });

  it('refuses another method, URL, name, key, or a mangled MAC', () => {
    const header = signPeerRequest(KEY, 'a', 'GET', '/x', NOW);
    expect(verifyPeerRequest(KEY, header, 'DELETE', '/x', NOW, 30_000)).toHaveProperty('error');
    expect(verifyPeerRequest(KEY, header, 'GET', '/y', NOW, 30_000)).toHaveProperty('error');
    expect(verifyPeerRequest(KEY, header.replace(/^a\./, 'b.'), 'GET', '/x', NOW, 30_000)).toHaveProperty('error');
    expect(verifyPeerRequest('other-key', header, 'GET', '/x', NOW, 30_000)).toHaveProperty('error');
    expect(verifyPeerRequest(KEY, header.slice(0, -2) + 'AA', 'GET', '/x', NOW, 30_000)).toHaveProperty('error');
  });

  it('accepts ±30 s of clock difference and not a millisecond more', () => {
    const header = signPeerRequest(KEY, 'a', 'GET', '/', NOW);
    expect(verifyPeerRequest(KEY, header, 'GET', '/', NOW + 30_000, 30_000)).toEqual({ from: 'a' });
    expect(verifyPeerRequest(KEY, header, 'GET', '/', NOW - 30_000, 30_000)).toEqual({ from: 'a' });
    expect(verifyPeerRequest(KEY, header, 'GET', '/', NOW + 30_001, 30_000)).toMatchObject({ error: expect.stringMatching(/window/) });
  });

  it('refuses a missing or malformed header, and everything before a peer key is known', () => {
    for (const bad of [undefined, '', 'a', 'a.b', 'a.notanumber.mac', '.123.mac', ['a.1.x', 'b.2.y'], 'x'.repeat(600)]) {
      expect(verifyPeerRequest(KEY, bad, 'GET', '/', NOW, 30_000)).toHaveProperty('error');
    }
    expect(verifyPeerRequest(null, signPeerRequest(KEY, 'a', 'GET', '/', NOW), 'GET', '/', NOW, 30_000)).toMatchObject({ error: expect.stringMatching(/no peer key/) });
  });
});

describe('rankPeers', () => {
  const view = new PlacementView({ name: 'me', region: 'eu', weight: 1 });
  view.update({
    type: 'cluster',
    attach: 2,
    peerKey: KEY,
    region: 'eu',
    ingresses: [
      { name: 'me', region: 'eu', weight: 1, draining: false, peerUrl: 'http://me' },
      { name: 'eu-1', region: 'eu', weight: 1, draining: false, peerUrl: 'http://eu-1' },
      { name: 'eu-2', region: 'eu', weight: 1, draining: false, peerUrl: 'http://eu-2' },
      { name: 'us-1', region: 'us', weight: 1, draining: false, peerUrl: 'http://us-1' },
      { name: 'eu-drained', region: 'eu', weight: 1, draining: true, peerUrl: 'http://d' },
      { name: 'eu-no-url', region: 'eu', weight: 1, draining: false },
    ],
  });
  const gpu: HostTraits = { ...OPERATOR_HOST, capabilities: ['webgpu'] };
  const host = (placement: string[], traits: HostTraits = gpu): KnownHost => ({ key: placement.join('+'), traits, placement });
  const wantsGpu = (t: HostTraits) => t.capabilities.includes('webgpu');

  it('puts same-region peers first, then those with more eligible hosts', () => {
    const known = [host(['us-1', 'eu-2']), host(['us-1', 'me']), host(['us-1', 'eu-1']), host(['eu-1', 'me']), host(['us-1', 'eu-1'])];
    expect(rankPeers(view, known, wantsGpu).map((p) => p.name)).toEqual(['eu-1', 'eu-2', 'us-1']);
  });

  it('counts only eligible, not draining hosts, and only live peers that take forwards', () => {
    const known = [
      host(['eu-1', 'me'], OPERATOR_HOST), // not a gpu host
      host(['eu-2', 'me'], { ...gpu, draining: true }),
      host(['eu-drained', 'eu-no-url']),
      host(['us-1', 'me']),
    ];
    expect(rankPeers(view, known, wantsGpu).map((p) => p.name)).toEqual(['us-1']);
    expect(rankPeers(view, [host(['me'])], wantsGpu)).toEqual([]);
  });
});
