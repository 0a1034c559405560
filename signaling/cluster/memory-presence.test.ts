/** The shared PresenceStore contract (test/presence-suite.ts) on the single-machine store: one node, no leases. */
import { presenceSuite } from '../../test/presence-suite.ts';
import { MemoryPresence } from './memory.ts';

presenceSuite('MemoryPresence', async () => {
  let store: MemoryPresence | null = null;
  return {
    multiNode: false,
    leases: false,
    async open(node) {
      // One machine has one node: every store the suite opens is that node's.
      store ??= new MemoryPresence({ nodeId: node.nodeId, region: node.region ?? 'r1' });
      return store;
    },
    async close() {
      await store?.close();
      store = null;
    },
  };
});
