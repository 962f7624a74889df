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

/** parseJson, or undefined for text that is not JSON (answers of other services, judged by their shape next). */
export function parseJsonOrUndefined(text: string): unknown {
  try {
    return parseJson(text);
  } catch {
    return undefined;
  }
}

export function parseJson(text: string): unknown {
  return hasEscapedKey(text) ? parseStrict(text) : JSON.parse(text);
}

/** Nesting beyond this is refused (the native parser allows more): no input of ours nests so deep. */
const MAX_DEPTH = 1_000;

type Container = { array: unknown[] } | { object: Record<string, unknown>; key: string };

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Returned by a step that has not finished the document. */
const MORE: unique symbol = Symbol('more');

function setKey(o: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
  else o[key] = value;
}

/**
 * A strict JSON reader with the native parser's results: same values, key order, last
 * duplicate wins, `__proto__` an own property. Iterative, so deep nesting cannot overflow the stack.
 * Strings with escapes are decoded by JSON.parse of the lone string literal, which the bug does
 * not touch (it is in how object keys are looked up).
 */
export function parseStrict(text: string): unknown {
  return new StrictJsonReader(text).read();
}

class StrictJsonReader {
  private i = 0;
  private readonly stack: Container[] = [];
  constructor(private readonly text: string) {}

  read(): unknown {
    for (;;) {
      // Read one value; containers are pushed and their first member read on the next turn.
      this.skipSpace();
      const c = this.text[this.i];
      const value = c === '[' || c === '{' ? this.open(c) : this.readScalar();
      if (value === MORE) continue;
      const result = this.hand(value);
      if (result !== MORE) return result;
    }
  }

  /** At `[` or `{`: an empty container is the value; otherwise it is pushed (MORE). */
  private open(c: '[' | '{'): unknown {
    if (this.stack.length >= MAX_DEPTH) this.fail('Nesting too deep');
    this.i++;
    this.skipSpace();
    if (c === '[') {
      if (this.text[this.i] !== ']') {
        this.stack.push({ array: [] });
        return MORE;
      }
      this.i++;
      return [];
    }
    if (this.text[this.i] !== '}') {
      this.stack.push({ object: {}, key: this.readKey() });
      return MORE;
    }
    this.i++;
    return {};
  }

  /** Hands the value to its container and closes every container that ends here: the document when the last one closes. */
  private hand(value: unknown): unknown {
    const text = this.text;
    for (;;) {
      const top = this.stack.at(-1);
      if (top === undefined) {
        this.skipSpace();
        if (this.i < text.length) this.fail(`Unexpected non-whitespace character after JSON`);
        return value;
      }
      if ('array' in top) top.array.push(value);
      else setKey(top.object, top.key, value);
      this.skipSpace();
      const sep = text[this.i++];
      if (sep === ',') {
        if ('object' in top) top.key = this.readKey();
        return MORE;
      }
      if (sep === ('array' in top ? ']' : '}')) {
        this.stack.pop();
        value = 'array' in top ? top.array : top.object;
        continue;
      }
      this.i--;
      this.fail(this.i >= text.length ? 'Unexpected end of JSON input' : `Unexpected token ${JSON.stringify(text[this.i])}`);
    }
  }

  private fail(what: string): never {
    throw new SyntaxError(`${what} in JSON at position ${this.i}`);
  }

  private skipSpace(): void {
    for (;;) {
      const c = this.text.charCodeAt(this.i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.i++;
      else return;
    }
  }

  private readString(): string {
    const text = this.text;
    const start = this.i; // at the opening quote
    let escaped = false;
    for (this.i++; this.i < text.length; this.i++) {
      const c = text.charCodeAt(this.i);
      if (c === 0x22) {
        this.i++;
        return escaped ? (JSON.parse(text.slice(start, this.i)) as string) : text.slice(start + 1, this.i - 1);
      }
      if (c === 0x5c) {
        escaped = true;
        this.i++;
      } else if (c < 0x20) this.fail('Bad control character in string literal');
    }
    return this.fail('Unterminated string');
  }

  private readScalar(): unknown {
    const c = this.text[this.i];
    if (c === '"') return this.readString();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.text);
    if (m === null) return this.fail(this.i >= this.text.length ? 'Unexpected end' : `Unexpected token ${JSON.stringify(c)}`);
    this.i += m[0].length;
    return Number(m[0]);
  }

  private readKey(): string {
    this.skipSpace();
    if (this.text[this.i] !== '"') this.fail('Expected property name');
    const key = this.readString();
    this.skipSpace();
    if (this.text[this.i] !== ':') this.fail("Expected ':' after property name");
    this.i++;
    return key;
  }
}
