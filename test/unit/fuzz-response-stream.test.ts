import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { encodeResponseHead, readResponseHead, validateResponseHead, ProtocolError, type ResponseHead } from '../../src/protocol/index.js';
import { FUZZ_SEED, Rng, caseIndices, caseSeed, fuzzFailure, makeCorpus, mutateBytes, randomBytes, randomChunks, randomString, show } from '../support/fuzz.js';

/** A head as a broker client sends it: status, origin headers, sometimes an errorType. */
function randomHead(rng: Rng): ResponseHead {
  const headers: Record<string, string | string[]> = {};
  const n = rng.int(6);
  for (let i = 0; i < n; i++) headers[rng.pick(['content-type', 'x-request-id', 'set-cookie', 'etag', randomString(rng, 12).toLowerCase()])] = rng.chance(0.2) ? [randomString(rng, 20), 'b'] : randomString(rng, 40);
  const head: ResponseHead = { status: rng.range(100, 599), headers };
  if (rng.chance(0.2)) head.errorType = rng.pick(['ORIGIN_ERROR', 'BAD_GATEWAY', randomString(rng, 8)]);
  return head;
}

function validStream(rng: Rng): { head: ResponseHead; body: Buffer; bytes: Buffer } {
  const head = randomHead(rng);
  const body = rng.chance(0.002) ? randomBytes(rng, 1 << 20) : randomBytes(rng, 8192);
  return { head, body, bytes: Buffer.concat([encodeResponseHead(head), body]) };
}

type Ending = 'end' | 'destroy-error' | 'destroy';

interface Outcome {
  head?: ResponseHead;
  body?: Buffer;
  error?: unknown;
}

/**
 * Feeds `chunks` into a fresh stream while readResponseHead reads it, then ends the stream the
 * given way; once the head is known, the rest is read as the server pipes it. Settles when the
 * reader and the body have both finished: a hang shows as a case that never settles.
 */
async function runCase(rng: Rng, chunks: Buffer[], ending: Ending): Promise<Outcome> {
  const stream = rng.chance(0.5) ? new PassThrough() : new Readable({ read() {} });
  // Like IncomingMessage (which emits 'error' only to listeners), a stream destroyed after its head
  // must not crash the process before the body reader is attached.
  stream.on('error', () => {});
  const put = (b: Buffer) => (stream instanceof PassThrough ? stream.write(b) : stream.push(b));
  const reading = readResponseHead(stream).then(
    (head) => ({ head }),
    (error: unknown) => ({ error }),
  );
  // Some chunks arrive in later turns of the event loop (as from a socket), a bounded number per case.
  const yieldEvery = rng.pick([0, 1, 3, 16]);
  let yields = 0;
  for (let i = 0; i < chunks.length; i++) {
    put(chunks[i]!);
    if (yieldEvery > 0 && i % yieldEvery === 0 && yields++ < 12) await new Promise((r) => setImmediate(r));
  }
  if (ending === 'destroy-error') stream.destroy(new Error('socket hang up'));
  else if (ending === 'destroy') stream.destroy();
  else if (stream instanceof PassThrough) stream.end();
  else stream.push(null);
  const read = await reading;
  if (!('head' in read)) return read;
  const parts: Buffer[] = [];
  try {
    for await (const chunk of stream) parts.push(chunk as Buffer);
  } catch (error) {
    return { head: read.head, error };
  }
  return { head: read.head, body: Buffer.concat(parts) };
}

function assertTyped(err: unknown): void {
  assert.ok(err instanceof ProtocolError && typeof err.code === 'string', `expected a ProtocolError, got ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
}

test('fuzz the response-data stream reader: random, mutated and valid streams in random chunkings settle typed; valid ones give back head and body exactly', async (t) => {
  const seed = FUZZ_SEED;
  const corpus = makeCorpus(32, (rng) => validStream(rng).bytes);
  const indices = caseIndices();
  const counts = { valid: 0, heads: 0, typedErrors: 0, streamErrors: 0 };
  const started = performance.now();
  // Cases run in batches; one deadline per batch (not per case) catches any that never settles.
  const BATCH = 250;
  const DEADLINE_MS = 120_000;
  for (let b = 0; b < indices.length; b += BATCH) {
    const batch = indices.slice(b, b + BATCH).map((index) => {
      const rng = new Rng(caseSeed(seed, index));
      const mode = rng.int(4);
      const valid = validStream(rng);
      let bytes: Buffer;
      if (mode === 0) bytes = valid.bytes;
      else if (mode === 1 || mode === 2) {
        bytes = valid.bytes;
        for (let i = 1 + rng.int(3); i > 0; i--) bytes = mutateBytes(rng, bytes, corpus);
      } else bytes = randomBytes(rng, 600);
      const ending: Ending = mode === 0 ? 'end' : rng.pick(['end', 'end', 'destroy-error', 'destroy'] as const);
      const chunks = randomChunks(rng, bytes);
      const state = { index, bytes, settled: false };
      const done = runCase(rng, chunks, ending)
        .then((outcome) => {
          state.settled = true;
          if (mode === 0) {
            counts.valid++;
            assert.equal(outcome.error, undefined, 'a valid stream reads without error');
            assert.deepEqual(outcome.head, valid.head);
            assert.ok(outcome.body?.equals(valid.body), `body comes back byte for byte (${outcome.body?.length} vs ${valid.body.length} bytes)`);
            return;
          }
          if (outcome.head) {
            counts.heads++;
            // Whatever the reader accepts is a head the server can use.
            assert.deepEqual(validateResponseHead(outcome.head), outcome.head);
            if (outcome.error !== undefined) {
              counts.streamErrors++;
              assert.notEqual(ending, 'end', `only a destroyed stream fails after its head: ${String(outcome.error)}`);
            }
          } else {
            counts.typedErrors++;
            assertTyped(outcome.error);
          }
        })
        .catch((err: unknown) => {
          state.settled = true;
          throw fuzzFailure('response-stream', seed, index, bytes, err);
        });
      return { state, done };
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((r) => (timer = setTimeout(() => r('deadline'), DEADLINE_MS)));
    const outcome = await Promise.race([Promise.all(batch.map((c) => c.done)), deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      const stuck = batch.filter((c) => !c.state.settled).map((c) => c.state);
      assert.fail(`[fuzz response-stream] seed=${seed}: ${stuck.length} case(s) never settled, e.g. case=${stuck[0]?.index} (replay: FUZZ_SEED=${seed} FUZZ_ONLY=${stuck[0]?.index}) input ${show(stuck[0]?.bytes)}`);
    }
  }
  t.diagnostic(`${indices.length} cases, seed ${seed}, ${Math.round(performance.now() - started)} ms, outcomes ${JSON.stringify(counts)}`);
  if (indices.length > 1000) assert.ok(counts.valid > 0 && counts.heads > 0 && counts.typedErrors > 0, 'every kind of outcome was exercised');
});

// ---------------------------------------------------------------- regressions found by the fuzzers

test('response head: a stream already destroyed or ended before reading rejects at once instead of hanging', async () => {
  const destroyed = new PassThrough();
  destroyed.destroy();
  await assert.rejects(readResponseHead(destroyed), (e: unknown) => e instanceof ProtocolError && e.code === 'RESPONSE_HEAD_TRUNCATED');
  const failed = new PassThrough();
  failed.on('error', () => {});
  failed.destroy(new Error('socket hang up'));
  await assert.rejects(readResponseHead(failed), (e: unknown) => e instanceof ProtocolError && e.code === 'RESPONSE_HEAD_TRUNCATED' && /socket hang up/.test(e.message));
  const ended = Readable.from([Buffer.from([1, 0, 0])]);
  ended.resume();
  await new Promise((r) => ended.on('end', r));
  await assert.rejects(readResponseHead(ended), (e: unknown) => e instanceof ProtocolError && e.code === 'RESPONSE_HEAD_TRUNCATED');
});
