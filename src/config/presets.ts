import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseDotenv } from './dotenv.js';

/**
 * SCM presets (BROKER_SCM_TYPE): Snyk's client templates, copied at build time from the pinned
 * snyk-broker package into dist/client-templates/ (scripts/copy-client-templates.mjs; github-cloud-app,
 * which Snyk ships for Universal Broker only, derived there from github-server-app's), with the
 * variable defaults of each template's .env, as Snyk's per-SCM images apply them (`broker init`).
 */
export const SCM_TYPES = [
  'github-com',
  'github-enterprise',
  'github-server-app',
  'github-cloud-app',
  'gitlab',
  'bitbucket-server',
  'bitbucket-server-bearer-auth',
  'azure-repos',
  'jira',
  'jira-bearer-auth',
  'artifactory',
  'nexus',
  'nexus2',
  'apprisk',
] as const;
export type ScmType = (typeof SCM_TYPES)[number];

/** Types Snyk ships templates for that need a separate Snyk image, with why. */
export const REFUSED_SCM_TYPES: Record<string, string> = {
  'container-registry-agent':
    "container-registry-agent needs Snyk's separate Container Registry Agent image (snyk/container-registry-agent) beside the broker client; ha-broker does not include it. Run that agent and give this client an ACCEPT file that points at it (CR_AGENT_URL)",
};

/** Variables of a template's .env that are not defaults for our client. */
const NOT_DEFAULTS = new Set(['ACCEPT']);

/** A value that is a placeholder to fill in, not a default: `<github-token>`, `gitlab.yourdomain.com`. */
export function isPlaceholder(value: string): boolean {
  return /<[^<>]*>/.test(value) || /yourdomain\./i.test(value);
}

/** Where the templates are: dist/client-templates beside the compiled code (or the repository's dist/ from a test build). */
export function templatesDir(): string {
  const candidates = [fileURLToPath(new URL('../client-templates/', import.meta.url)), fileURLToPath(new URL('../../../dist/client-templates/', import.meta.url))];
  return candidates.find((d) => existsSync(join(d, 'github-com'))) ?? candidates[0];
}

export interface Preset {
  type: ScmType;
  /** The template's accept.json.sample. */
  acceptPath: string;
  /** The template's .env variables (placeholders, ACCEPT and BROKER_DOWNSTREAM_TYPE_* left out), unexpanded. */
  defaults: Record<string, string>;
}

export function isScmType(value: string): value is ScmType {
  return (SCM_TYPES as readonly string[]).includes(value);
}

/** Reads a preset's files; throws an Error with a plain message when they are not there. */
export async function loadPreset(type: ScmType, dir = templatesDir()): Promise<Preset> {
  const acceptPath = join(dir, type, 'accept.json.sample');
  if (!existsSync(acceptPath)) throw new Error(`the accept template for ${type} is missing (${acceptPath}); the build copies it from the snyk-broker package (npm run build)`);
  let text = '';
  try {
    text = await readFile(join(dir, type, '.env.sample'), 'utf8');
  } catch {
    // github-server-app has no .env in snyk-broker.
  }
  const defaults: Record<string, string> = {};
  for (const [k, v] of Object.entries(parseDotenv(text))) {
    if (NOT_DEFAULTS.has(k) || k.startsWith('BROKER_DOWNSTREAM_TYPE_') || isPlaceholder(v)) continue;
    defaults[k] = v;
  }
  return { type, acceptPath, defaults };
}
