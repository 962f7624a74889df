import { serverRelaySuite } from '../support/server-relay-suite.js';

// Our broker client against our broker server: the same cases the real snyk-broker client passes.
serverRelaySuite(async (group, name, env) => group.broker(`our-${name}`, 'client', env));
