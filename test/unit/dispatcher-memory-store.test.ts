import { createMemoryStore } from '../../src/dispatcher/memory-store.js';
import { allocationSuite } from './dispatcher-allocation-suite.js';

allocationSuite('memory', async () => {
  const store = createMemoryStore();
  return { store, peer: () => store, cleanup: () => store.close() };
});
