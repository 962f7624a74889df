import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Env } from './env.js';
import { ConfigError } from './errors.js';
import { dollarRefs, expandDollarVars, parseDotenv } from './dotenv.js';
import { isScmType, loadPreset, REFUSED_SCM_TYPES, SCM_TYPES, type ScmType } from './presets.js';

/** Where the accept rules come from, and whether snyk-broker's ACCEPT_* injection applies. */
export interface AcceptSource {
  path: string;
  /** Snyk injects ACCEPT_* rules only into its default file (ACCEPT=accept.json) and the preset's. */
  inject: boolean;
  /** The preset's template (BROKER_SCM_TYPE) rather than a file of the user's. */
  fromPreset: boolean;
}

export interface ClientEnv {
  /** The environment the client runs with: preset defaults < ./.env < the process environment, `$VAR`s expanded. */
  env: Env;
  scmType?: ScmType;
  accept: AcceptSource;
  /** Preset defaults left out because they refer to variables that are not set (name → the missing ones). */
  droppedDefaults: { name: string; missing: string[] }[];
  /** The .env file that was read, if any. */
  dotenvPath?: string;
}

/**
 * The client's effective environment, as Snyk's images build it: the SCM preset's template .env
 * (BROKER_SCM_TYPE; the `broker init <type>` of Snyk's images), then a `.env` in the working
 * directory (Snyk's client loads it with dotenv, which never overrides a variable already set),
 * then the process environment, which always wins. `$VAR` references are expanded as Snyk does.
 */
export async function resolveClientEnv(processEnv: Env, cwd = process.cwd()): Promise<ClientEnv> {
  const dotenvPath = join(cwd, '.env');
  let fromFile: Record<string, string> = {};
  let readPath: string | undefined;
  if (existsSync(dotenvPath)) {
    try {
      fromFile = parseDotenv(await readFile(dotenvPath, 'utf8'));
      readPath = dotenvPath;
    } catch (err) {
      throw new ConfigError([`cannot read ${dotenvPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
    }
  }
  const userEnv: Env = { ...fromFile };
  for (const [k, v] of Object.entries(processEnv)) if (v !== undefined) userEnv[k] = v;

  const typeRaw = userEnv.BROKER_SCM_TYPE?.trim();
  let scmType: ScmType | undefined;
  let defaults: Record<string, string> = {};
  let presetAccept: string | undefined;
  if (typeRaw) {
    if (REFUSED_SCM_TYPES[typeRaw]) throw new ConfigError([`BROKER_SCM_TYPE=${typeRaw}: ${REFUSED_SCM_TYPES[typeRaw]}`]);
    if (!isScmType(typeRaw)) throw new ConfigError([`BROKER_SCM_TYPE must be one of ${SCM_TYPES.join(', ')}, got ${JSON.stringify(typeRaw)}`]);
    scmType = typeRaw;
    try {
      const preset = await loadPreset(scmType);
      defaults = preset.defaults;
      presetAccept = preset.acceptPath;
    } catch (err) {
      throw new ConfigError([`BROKER_SCM_TYPE=${typeRaw}: ${(err as Error).message}`]);
    }
  }

  const merged: Env = { ...defaults, ...userEnv };
  const expanded = expandDollarVars(merged);
  // A preset default that still refers to an unset variable would be a half-filled value (a URL
  // with "$GITHUB_API" in it): leave it out, and say so at start.
  const droppedDefaults: ClientEnv['droppedDefaults'] = [];
  for (const name of Object.keys(defaults)) {
    if (name in userEnv) continue;
    const missing = dollarRefs(expanded[name] ?? '').filter((n) => !expanded[n] && !expanded[`${n}_POOL`]);
    if (missing.length > 0) {
      delete expanded[name];
      droppedDefaults.push({ name, missing });
    }
  }

  const acceptRaw = userEnv.ACCEPT?.trim() || undefined;
  let accept: AcceptSource;
  if (presetAccept && (acceptRaw === undefined || (acceptRaw === 'accept.json' && !existsSync(resolve(cwd, acceptRaw))))) {
    accept = { path: presetAccept, inject: true, fromPreset: true };
  } else {
    accept = { path: resolve(cwd, acceptRaw ?? 'accept.json'), inject: acceptRaw === undefined || acceptRaw === 'accept.json', fromPreset: false };
  }
  return { env: expanded, scmType, accept, droppedDefaults, dotenvPath: readPath };
}
