/**
 * The `.env` format Snyk's client reads (the dotenv package's rules): `KEY=value` lines, optional
 * `export `, `#` comments, values in single, double or back quotes (double quotes turn `\n` into a
 * newline), unquoted values trimmed and cut at ` #`. One difference, on purpose: a quoted value
 * followed by stray text (`KEY="Bearer $X",` in Snyk's bitbucket-server-bearer-auth template)
 * keeps the quoted text, where dotenv keeps the quotes and the comma in the value.
 */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*(?:export\s+)?([\w.-]+)\s*(?:=|:\s)\s*(.*)$/.exec(lines[i]);
    if (!m) continue;
    const key = m[1];
    let rest = m[2];
    const quote = rest[0];
    if (quote === '"' || quote === "'" || quote === '`') {
      // A quoted value may span lines.
      let end = findClose(rest, quote);
      while (end < 0 && i + 1 < lines.length) {
        rest += `\n${lines[++i]}`;
        end = findClose(rest, quote);
      }
      if (end >= 0) {
        let value = rest.slice(1, end);
        if (quote === '"') value = value.replace(/\\n/g, '\n').replace(/\\r/g, '\r');
        out[key] = value;
        continue;
      }
    }
    out[key] = rest.replace(/\s+#.*$/, '').replace(/^#.*$/, '').trim();
  }
  return out;
}

function findClose(text: string, quote: string): number {
  for (let i = 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === quote) return i;
  }
  return -1;
}

const REF = /\\?\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Names of the `$VAR`s a value refers to (an escaped `\$` is no reference). */
export function dollarRefs(value: string): string[] {
  return [...value.matchAll(REF)].filter((m) => !m[0].startsWith('\\')).map((m) => m[1]);
}

/**
 * Snyk's client expands `$VAR` in every variable's value with the value of VAR (a reference to an
 * unset or empty variable stays as written). References are followed through other variables, so
 * the order of the variables does not matter. When VAR has a pool (`VAR_POOL`), the value gets a
 * pool of its own (`KEY_POOL`, one expansion per pool member) as in snyk-broker.
 */
export function expandDollarVars(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env };
  const done = new Map<string, string>();
  const expand = (key: string, seen: Set<string>): string => {
    const cached = done.get(key);
    if (cached !== undefined) return cached;
    const raw = env[key] ?? '';
    if (!raw.includes('$') || seen.has(key)) return raw;
    seen.add(key);
    const value = raw.replace(REF, (all, name: string) => {
      if (all.startsWith('\\')) return all;
      if (!env[name]) return all;
      return expand(name, seen);
    });
    seen.delete(key);
    done.set(key, value);
    return value;
  };
  for (const key of Object.keys(env)) {
    const raw = env[key];
    if (raw === undefined || !raw.includes('$')) continue;
    const pooled = dollarRefs(raw).find((n) => env[`${n}_POOL`]);
    if (pooled && !env[`${key}_POOL`]) {
      const members = env[`${pooled}_POOL`]!.split(',').map((s) => s.trim()).filter(Boolean);
      out[`${key}_POOL`] = members
        .map((v) => raw.replace(REF, (all, name: string) => (all.startsWith('\\') ? all : name === pooled ? v : env[name] ? expand(name, new Set([key])) : all)))
        .join(',');
      continue;
    }
    out[key] = expand(key, new Set());
  }
  return out;
}
