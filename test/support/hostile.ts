// Shared by the hostile-input suites (server platform API, client webhook port): run an attack
// while legitimate traffic flows through the same process, and the attacks both ports must refuse
// the same way (oversized bodies, request smuggling).
import assert from 'node:assert/strict';
import type { Origin } from './origin.js';
import type { RunningProcess } from './processes.js';
import { httpStatus } from './http-status.js';
import { waitFor } from './wait.js';
import { describeLoadFailures, startSteadyLoad, type SteadyLoadOptions, type SteadyLoadReport } from './steady-load.js';
import { rawExchange, writeUntilClosed, type RawAnswer } from './raw-http.js';
import { FAILURES } from '../../src/protocol/failures.js';

export interface AttackRow {
  case: string;
  status: string;
  reason: string;
  legitSent: number;
  legitFailed: number;
  originSawAttack: boolean;
}

export interface AttackTarget {
  /** What the legitimate traffic and the attacks must never reach beyond the legitimate requests. */
  destination: () => Origin;
  /** Path prefix (at the destination) of the legitimate requests, e.g. `/echo/legit/`. */
  legitPrefix: string;
  /** Where the legitimate load goes: the URL for a load path. */
  platformUrl: (path: string) => string;
  load?: Partial<SteadyLoadOptions>;
  /** The process under attack and its base URL (healthcheck/readyz). */
  proc: () => RunningProcess;
  baseUrl: () => string;
}

/** One status/reason pair summing up several raw answers (for the results table). */
export function summary(answers: RawAnswer[]): { status: string; reason: string } {
  return { status: [...new Set(answers.map((a) => a.status))].join('/'), reason: [...new Set(answers.map((a) => a.headers['x-broker-failure'] ?? '-'))].join('/') };
}

export function attackHarness(target: AttackTarget) {
  const rows: AttackRow[] = [];

  /** The legitimate load's ids the destination received (from POST bodies), for duplicate detection. */
  function seenIds(): Map<string, number> {
    const ids = new Map<string, number>();
    for (const s of target.destination().seen) {
      if (s.method !== 'POST' || !s.url.startsWith(target.legitPrefix)) continue;
      try {
        const id = (JSON.parse(s.body) as { id?: string }).id;
        if (id) ids.set(id, (ids.get(id) ?? 0) + 1);
      } catch {
        // not one of ours
      }
    }
    return ids;
  }

  /**
   * Runs `attack` while legitimate requests trickle through the same process; asserts none of
   * them failed, the process is healthy afterwards, and the destination saw only legitimate
   * requests (plus what `allowed` admits).
   */
  async function underAttack(name: string, attack: () => Promise<{ status: string; reason: string }>, allowed: (s: Origin['seen'][number]) => boolean = () => false): Promise<SteadyLoadReport> {
    const destination = target.destination();
    const mark = destination.seen.length;
    const load = startSteadyLoad({ platformUrl: target.platformUrl, seenIds }, { rate: 20, path: target.legitPrefix.slice(1, -1), deadlineMs: 60_000, ...target.load });
    await waitFor('legitimate requests before the attack', () => load.ok >= 3, { timeoutMs: 30_000 });
    const outcome = await attack();
    const okAfter = load.ok;
    await waitFor('legitimate requests after the attack', () => load.ok >= okAfter + 3, { timeoutMs: 30_000 });
    const report = await load.stop();
    const foreign = destination.seen.slice(mark).filter((s) => !s.url.startsWith(target.legitPrefix) && !allowed(s));
    rows.push({ case: name, ...outcome, legitSent: report.sent, legitFailed: report.failed.length + report.hung, originSawAttack: foreign.length > 0 });
    assert.equal(report.failed.length, 0, `legitimate requests failed during "${name}": ${describeLoadFailures(report.failed)}`);
    assert.equal(report.hung, 0, `legitimate requests hung during "${name}"`);
    assert.equal(report.duplicatesAtOrigin, 0);
    assert.deepEqual(foreign.map((s) => `${s.method} ${s.url}`), [], `the destination received requests it should not have during "${name}"`);
    assert.equal(target.proc().child.exitCode, null, 'the process under attack is still running');
    assert.equal(await httpStatus(`${target.baseUrl()}/healthcheck`), 200);
    assert.equal(await httpStatus(`${target.baseUrl()}/readyz`), 200);
    return report;
  }

  /** The results table (markdown), printed after the suite. */
  function table(title: string, destinationName: string): string {
    const lines = rows.map((r) => `| ${r.case} | ${r.status} | ${r.reason} | ${r.legitSent} / ${r.legitFailed} | ${r.originSawAttack ? 'yes' : 'no'} |`);
    return ['', `| case (${title}) | status | x-broker-failure | legit sent / failed | ${destinationName} saw attack |`, '|---|---|---|---|---|', ...lines].join('\n');
  }

  return { rows, underAttack, table };
}

/**
 * A body above the limit, three ways (declared 1 GiB, chunked without end, a modest 200 KiB):
 * each gets 413 body-too-large, and the attacker is cut off long before the gigabyte.
 * `head(framing)` is the request head with `framing` (a content-length or transfer-encoding line).
 */
export async function assertBodyRefused(port: number, head: (framing: string) => string): Promise<{ status: string; reason: string }> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const GiB = 1024 * 1024 * 1024;
  // Declared 1 GiB: refused from the headers; the attacker writes until the connection is cut.
  const declared = await rawExchange(port, async (socket, count) => {
    socket.write(head(`content-length: ${GiB}\r\n`));
    await writeUntilClosed(socket, chunk, GiB, count);
  }, { timeoutMs: 60_000 });
  // Chunked, never ending: refused once the limit is crossed.
  const chunkHead = Buffer.from(`${chunk.length.toString(16)}\r\n`);
  const chunked = await rawExchange(port, async (socket, count) => {
    socket.write(head('transfer-encoding: chunked\r\n'));
    await writeUntilClosed(socket, Buffer.concat([chunkHead, chunk, Buffer.from('\r\n')]), GiB, count);
  }, { timeoutMs: 60_000 });
  for (const a of [declared, chunked]) {
    assert.equal(a.status, 413, a.raw.slice(0, 300));
    assert.equal(a.headers['x-broker-failure'], FAILURES.BODY_TOO_LARGE.reason);
    assert.ok(a.closed, 'the connection was closed');
    // Stopped reading: after the answer the rest is discarded for a bounded while (so the caller
    // can read the 413 rather than a reset), far less than the gigabyte.
    assert.ok(a.written < 64 * 1024 * 1024, `the attacker wrote ${a.written} bytes before the connection closed`);
  }
  // An ordinary caller with a modest oversized body gets the same clear answer.
  const small = await rawExchange(port, Buffer.concat([Buffer.from(head(`content-length: ${200 * 1024}\r\n`)), Buffer.alloc(200 * 1024, 0x62)]), { untilAnswer: true });
  assert.equal(small.status, 413);
  assert.equal(small.headers['x-broker-failure'], FAILURES.BODY_TOO_LARGE.reason);
  return { ...summary([declared, chunked, small]), status: `413 (attacker wrote ${Math.round(declared.written / 1024)} KiB / ${Math.round(chunked.written / 1024)} KiB of 1 GiB)` };
}

/** Paths of the refused smuggling requests carry this marker; `smuggled` the request hidden behind each. */
export const SMUGGLE_REFUSED = /smuggle-(clte|tecl|2cl|te-|fold|chunk|lf)/;

/**
 * The request-smuggling vectors (ambiguous framing): each must get exactly one 400 bad-request
 * and a closed connection, so nothing after it is parsed as another request. Then a request
 * hidden in a well-framed body must arrive as that body (check with `hiddenBody` at the destination).
 * `post(path, headers, body)` builds a raw POST to `<prefix>/<path>`; `smuggled` is the second
 * request an attacker hides; `bareLf(smuggled)` the same POST with LF-only line ends.
 */
export async function assertSmugglingRefused(
  port: number,
  o: { post: (path: string, headers: string, body: string) => string; smuggled: string; bareLf: (smuggled: string) => string; hiddenBody: string },
): Promise<{ status: string; reason: string }> {
  const { post, smuggled } = o;
  const cases: Array<[string, string]> = [
    ['CL + TE', post('smuggle-clte', `content-length: ${5 + smuggled.length}\r\ntransfer-encoding: chunked\r\n`, `0\r\n\r\n${smuggled}`)],
    ['TE + CL', post('smuggle-tecl', `transfer-encoding: chunked\r\ncontent-length: 4\r\n`, `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`)],
    ['two different CLs', post('smuggle-2cl', `content-length: 0\r\ncontent-length: ${smuggled.length}\r\n`, smuggled)],
    ['TE: chunked, identity', post('smuggle-te-identity', `transfer-encoding: chunked, identity\r\n`, `0\r\n\r\n${smuggled}`)],
    ['TE: identity', post('smuggle-te-id', `transfer-encoding: identity\r\ncontent-length: 0\r\n`, smuggled)],
    ['TE with space before colon', post('smuggle-te-space', `transfer-encoding : chunked\r\n`, `0\r\n\r\n${smuggled}`)],
    ['obs-fold header', post('smuggle-fold', `x-a: b\r\n transfer-encoding: chunked\r\ncontent-length: 0\r\n`, smuggled)],
    ['chunk size overflow', post('smuggle-chunk', `transfer-encoding: chunked\r\n`, `fffffffffffffffff1\r\nx\r\n0\r\n\r\n${smuggled}`)],
    ['bare LF line endings', o.bareLf(smuggled)],
  ];
  const answers: RawAnswer[] = [];
  for (const [name, bytes] of cases) {
    const a = await rawExchange(port, bytes);
    assert.equal(a.status, 400, `${name}: ${a.raw.slice(0, 300)}`);
    assert.equal(a.headers['x-broker-failure'], FAILURES.BAD_REQUEST.reason, name);
    assert.ok(a.closed, `${name}: the connection was closed`);
    // Exactly one answer: nothing after the refused request was parsed as another request.
    assert.equal(a.raw.match(/HTTP\/1\.1 \d{3}/g)?.length, 1, `${name}: ${a.raw.slice(0, 600)}`);
    answers.push(a);
  }
  // A request hidden in a body is only a body: one POST reaches the destination, carrying it.
  const hidden = await rawExchange(port, post('smuggle-hidden-body', `content-type: text/plain\r\ncontent-length: ${o.hiddenBody.length}\r\nconnection: close\r\n`, o.hiddenBody));
  assert.equal(hidden.status, 200, hidden.raw.slice(0, 300));
  return summary(answers);
}

/** After assertSmugglingRefused: the destination saw no smuggled or refused request, and the hidden one once, as a body. */
export function assertNothingSmuggled(destination: Origin, hiddenUrl: string, hiddenBody: string): void {
  assert.ok(!destination.seen.some((s) => s.url.includes('smuggled')), 'no smuggled second request reached the destination');
  assert.ok(!destination.seen.some((s) => SMUGGLE_REFUSED.test(s.url)), 'no refused request reached the destination');
  const hidden = destination.seen.filter((s) => s.url === hiddenUrl);
  assert.equal(hidden.length, 1);
  assert.equal(hidden[0]!.method, 'POST');
  assert.equal(hidden[0]!.body, hiddenBody);
}
