import { describe, expect, it } from 'vitest';
import { PlacementView } from './placement-view.ts';

const self = { name: 'me', region: 'eu', weight: 1, peerUrl: 'http://me:8081' };

describe('PlacementView', () => {
  it('places nothing before a cluster message: every host is this ingress\'s', () => {
    const view = new PlacementView(self);
    expect(view.clustered).toBe(false);
    expect(view.placement('tab-1', undefined)).toBeNull();
    expect(view.isMine(null)).toBe(true);
    expect(view.summary()).toBeNull();
  });

  it('counts itself in when a cluster message leaves it out, rather than dropping every host', () => {
    const view = new PlacementView(self);
    view.update({ type: 'cluster', ingresses: [{ name: 'other', region: 'eu', weight: 1, draining: false }], attach: 2, peerKey: 'k', region: 'eu' });
    expect(view.ingresses.map((i) => i.name)).toEqual(['other', 'me']);
    expect(view.placement('tab-1', undefined)!.sort()).toEqual(['me', 'other']);
  });

  it('takes the signaling node\'s region for hosts signaling does not tag, and caps attach at the live ingresses', () => {
    const view = new PlacementView(self);
    view.update({
      type: 'cluster',
      ingresses: [
        { name: 'me', region: 'eu', weight: 1, draining: false },
        { name: 'us-1', region: 'us', weight: 1, draining: false },
        { name: 'eu-2', region: 'eu', weight: 1, draining: true },
      ],
      attach: 3,
      peerKey: 'k',
      region: 'us',
    });
    // Untagged hosts are in the node's region (us): us-1 first.
    for (let i = 0; i < 50; i++) expect(view.placement(`tab-${i}`, undefined)![0]).toBe('us-1');
    expect(view.placement('tab-1', 'eu')![0]).toBe('me');
    expect(view.summary()).toMatchObject({ attach: 2, region: 'eu' });
    // Forwarding targets: live, with a peer URL, not this ingress.
    expect(view.peer('me')).toBeUndefined();
    expect(view.peer('eu-2')).toBeUndefined();
    expect(view.peer('us-1')).toBeUndefined(); // no peerUrl
  });
});
