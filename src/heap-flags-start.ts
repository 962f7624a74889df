// Imported first by cli.ts, so the re-execution (if any) happens before any other module runs.
import { applyHeapFlags } from './heap-flags.js';

applyHeapFlags();
