/**
 * JSON.parse that gives the right object keys on every Node we run on.
 *
 * V8 13.6 (Node 24) and later have an open bug (nodejs/node#63785, crbug 521080746): once an
 * object with a `"\\"` key has been parsed, a later object of the same shape whose key is
 * escaped (`"\""`, `"\n"`, `"\u001f"`…) can come back with the key `\`. Tunnel frames, answer
 * heads and request bodies that accept rules inspect are parsed here, so a key an origin or a
 * platform sent is never silently renamed (and a filter never sees a key the origin does not).
 *
 * Text without an escaped key (the usual case, found with one regex scan) goes to the native
 * parser; the rest is read by a small strict parser that builds keys itself.
 */

// A closing quote and colon (the end of an object key) with an escape earlier in the same
// string: every key holding a backslash matches; values almost never do, and a false match only
// costs the slower, still correct, path. Anchored on the key's end, which is cheaper to scan for
// than every backslash of a body that carries JSON in a string.
const ESCAPED_KEY = /"(?<=\\[^][^"\\]*")[ \t\n\r]*:/;

export function hasEscapedKey(text: string): boolean {
  return text.includes('\\') && ESCAPED_KEY.test(text);
}

export function parseJson(text: string): unknown {
  return hasEscapedKey(text) ? parseStrict(text) : JSON.parse(text);
}

/** Nesting beyond this is refused (the native parser allows more): no input of ours nests so deep. */
const MAX_DEPTH = 1_000;

type Container = { array: unknown[] } | { object: Record<string, unknown>; key: string };

/**
 * A strict JSON reader with the native parser's results: same values, key order, last
 * duplicate wins, `__proto__` an own property. Iterative, so deep nesting cannot overflow the stack.
 * Strings with escapes are decoded by JSON.parse of the lone string literal, which the bug does
 * not touch (it is in how object keys are looked up).
 */
export function parseStrict(text: string): unknown {
  let i = 0;
  const stack: Container[] = [];
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} in JSON at position ${i}`);
  };
  const skipSpace = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const readString = (): string => {
    const start = i; // at the opening quote
    let escaped = false;
    for (i++; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return escaped ? (JSON.parse(text.slice(start, i)) as string) : text.slice(start + 1, i - 1);
      }
      if (c === 0x5c) {
        escaped = true;
        i++;
      } else if (c < 0x20) fail('Bad control character in string literal');
    }
    return fail('Unterminated string');
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const readScalar = (): unknown => {
    const c = text[i];
    if (c === '"') return readString();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m === null) return fail(i >= text.length ? 'Unexpected end' : `Unexpected token ${JSON.stringify(c)}`);
    i += m[0].length;
    return Number(m[0]);
  };
  const setKey = (o: Record<string, unknown>, key: string, value: unknown): void => {
    if (key === '__proto__') Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
    else o[key] = value;
  };
  const readKey = (): string => {
    skipSpace();
    if (text[i] !== '"') fail('Expected property name');
    const key = readString();
    skipSpace();
    if (text[i] !== ':') fail("Expected ':' after property name");
    i++;
    return key;
  };

  let value: unknown;
  for (;;) {
    // Read one value; containers are pushed and their first member read on the next turn.
    skipSpace();
    const c = text[i];
    if (c === '[' || c === '{') {
      if (stack.length >= MAX_DEPTH) fail('Nesting too deep');
      i++;
      skipSpace();
      if (c === '[') {
        if (text[i] === ']') {
          i++;
          value = [];
        } else {
          stack.push({ array: [] });
          continue;
        }
      } else if (text[i] === '}') {
        i++;
        value = {};
      } else {
        stack.push({ object: {}, key: readKey() });
        continue;
      }
    } else value = readScalar();

    // Hand the value to its container; close every container that ends here.
    for (;;) {
      const top = stack.at(-1);
      if (top === undefined) {
        skipSpace();
        if (i < text.length) fail(`Unexpected non-whitespace character after JSON`);
        return value;
      }
      if ('array' in top) top.array.push(value);
      else setKey(top.object, top.key, value);
      skipSpace();
      const sep = text[i++];
      if (sep === ',') {
        if ('object' in top) top.key = readKey();
        break;
      }
      if (sep === ('array' in top ? ']' : '}')) {
        stack.pop();
        value = 'array' in top ? top.array : top.object;
        continue;
      }
      i--;
      fail(i >= text.length ? 'Unexpected end of JSON input' : `Unexpected token ${JSON.stringify(text[i])}`);
    }
  }
}
