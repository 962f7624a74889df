export * from './errors.js';
export * from './types.js';
export { loadAcceptFile, parseAcceptJson } from './load.js';
export { RuleSet, compileRules } from './rule-set.js';
export { isSafePath, splitUrl, compilePathPattern } from './path-pattern.js';
export { VariableResolver, variablesIn, type Vars } from './variables.js';
export { authorizationFor, splitOrigin } from './credentials.js';
export { usesGithubAppToken, withGithubAppAuth } from './github-app-rules.js';
export { injectAcceptRules, type InjectNote, type InjectVars } from './inject.js';
