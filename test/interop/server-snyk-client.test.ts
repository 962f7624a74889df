import { serverRelaySuite } from '../support/server-relay-suite.js';
import { startSnykBroker } from '../support/snyk-broker.js';

// The real snyk-broker client (npm 5.22.14) against our broker server: the proof that the
// server is wire-compatible with what customers run today.
serverRelaySuite((group, name, env) => startSnykBroker(group, `snyk-${name}`, 'client', env));
