// Imported first by cli.ts, so the re-execution (if any) happens before any other module runs.
import { capYoungGeneration } from './young-generation.js';

capYoungGeneration();
