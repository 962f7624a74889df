import { randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * Binary websocket messages for the answer streams, built where they are written. `ws` would
 * take a frame of ours and copy it once more to mask it (it masks a copy of any buffer it did
 * not allocate); here the payload is masked while it is copied into the frame, so each byte
 * from the origin is copied once, and the frames' buffers are reused once the socket took
 * them, so a large answer allocates (and the GC sweeps) next to nothing.
 *
 * Every frame is masked with its own random key (RFC 6455 §5.3, a client must), from a pool
 * filled by the CSPRNG like `ws` does.
 */
export interface FrameSink {
  /** An empty frame with room for `payloadBytes` bytes. */
  open(payloadBytes: number): OutFrame;
}

export interface OutFrame {
  /** Payload bytes still fitting. */
  readonly room: number;
  /** Copies `bytes` (at most `room`) to the end of the payload. */
  append(bytes: Buffer): void;
  /** Sends the frame as one binary message; `cb` once the socket took it (or failed). Nothing may be appended after. */
  send(cb: (err?: Error | null) => void): void;
  /** Drops a frame that will not be sent (its stream failed), so its room can be used again. */
  discard(): void;
}

/** Writes one finished websocket frame (header and masked payload) to the socket under the websocket, in order with `ws`'s own frames. */
export type RawFrameWrite = (frame: Buffer, cb: (err?: Error | null) => void) => void;

/** A sink over a plain "send this buffer as one binary message" (tests, or a transport that frames itself). */
export function copyingFrameSink(sendBinary: (frame: Buffer, cb: (err?: Error | null) => void) => void): FrameSink {
  return {
    open(payloadBytes) {
      const buf = Buffer.allocUnsafe(payloadBytes);
      let length = 0;
      return {
        get room() {
          return buf.length - length;
        },
        append(bytes) {
          length += bytes.copy(buf, length);
        },
        send(cb) {
          sendBinary(buf.subarray(0, length), cb);
        },
        discard() {},
      };
    },
  };
}

type MaskFn = (source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number) => void;

function maskInJs(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void {
  for (let i = 0; i < length; i++) output[offset + i] = source[i] ^ mask[i & 3];
}

/** bufferutil's native mask when it is installed (an optional dependency, as for `ws`); else plain JS. */
function loadMask(): MaskFn {
  try {
    const native = (createRequire(import.meta.url)('bufferutil') as { mask?: MaskFn }).mask;
    if (typeof native === 'function') return (s, m, o, off, len) => (len < 48 ? maskInJs(s, m, o, off, len) : native(s, m, o, off, len));
  } catch {
    // not installed: the JS loop
  }
  return maskInJs;
}
const mask: MaskFn = loadMask();

const RANDOM_POOL_BYTES = 8 * 1024;
let randomPool: Buffer | undefined;
let randomAt = RANDOM_POOL_BYTES;

function nextMask(into: Buffer): void {
  if (randomAt === RANDOM_POOL_BYTES) {
    randomPool ??= Buffer.alloc(RANDOM_POOL_BYTES);
    randomFillSync(randomPool);
    randomAt = 0;
  }
  randomPool!.copy(into, 0, randomAt, randomAt + 4);
  randomAt += 4;
}

/** Header bytes of a masked frame with `len` payload bytes (the shortest length form, as RFC 6455 requires). */
function headerBytes(len: number): number {
  return len < 126 ? 6 : len < 65536 ? 8 : 14;
}

function writeHeader(b: Buffer, at: number, len: number, key: Buffer): void {
  b[at] = 0x82; // FIN, binary
  if (len < 126) b[at + 1] = 0x80 | len;
  else if (len < 65536) {
    b[at + 1] = 0x80 | 126;
    b.writeUInt16BE(len, at + 2);
  } else {
    b[at + 1] = 0x80 | 127;
    b.writeUInt32BE(0, at + 2);
    b.writeUInt32BE(len, at + 6);
  }
  key.copy(b, at + headerBytes(len) - 4, 0, 4);
}

/** A buffer frames are laid into one after the other; reusable once written and no longer filled. */
class Block {
  readonly buf: Buffer;
  /** Bytes of frames sent and not yet handed to the socket start here... */
  start = 0;
  /** ...and end here (an open frame's slot follows). */
  end = 0;
  writes = 0;
  current = true;
  /** A write failed: the socket is going, and the block is not taken back. */
  failed = false;
  constructor(bytes: number) {
    this.buf = Buffer.allocUnsafeSlow(bytes);
  }
}

/**
 * One frame being filled: in a block (`block` set, at `slot`) or in a buffer of its own. Its
 * header is written when it is sent; room for the header of its largest size is kept before
 * the payload, and a frame that ended up shorter moves its payload back by the difference
 * (only frames under 126 bytes or crossing 64 KiB do), so frames in a block stay contiguous.
 */
class MaskedFrame implements OutFrame {
  readonly #key = Buffer.alloc(16);
  /** The key rotated by 0..3 bytes: bytes appended at payload offset k are masked with rotation k & 3. */
  readonly #rotations = [0, 1, 2, 3].map((r) => this.#key.subarray(r * 4, r * 4 + 4));
  #length = 0;
  readonly #reserved: number;

  constructor(
    readonly buf: Buffer,
    readonly slot: number,
    readonly limit: number,
    readonly block: Block | undefined,
    private readonly sent: (f: MaskedFrame, bytes: Buffer, cb: (err?: Error | null) => void) => void,
    private readonly dropped: (f: MaskedFrame) => void,
  ) {
    this.#reserved = headerBytes(limit);
    nextMask(this.#key);
    for (let r = 1; r < 4; r++) for (let i = 0; i < 4; i++) this.#key[r * 4 + i] = this.#key[(r + i) & 3]!;
  }

  get room(): number {
    return this.limit - this.#length;
  }

  append(bytes: Buffer): void {
    mask(bytes, this.#rotations[this.#length & 3], this.buf, this.slot + this.#reserved + this.#length, bytes.length);
    this.#length += bytes.length;
  }

  send(cb: (err?: Error | null) => void): void {
    const len = this.#length;
    const h = headerBytes(len);
    const payloadAt = this.slot + this.#reserved;
    if (h !== this.#reserved) this.buf.copyWithin(this.slot + h, payloadAt, payloadAt + len);
    writeHeader(this.buf, this.slot, len, this.#key);
    this.sent(this, this.buf.subarray(this.slot, this.slot + h + len), cb);
  }

  discard(): void {
    this.dropped(this);
  }
}

/**
 * Masked frames written straight to the socket. Frames are laid one after the other into
 * blocks of `blockBytes` (a few kept for reuse, at most `keepBlocks`), and a block's frames go to
 * the socket in one write: when the block is full, before any frame that does not go into it,
 * and at the end of the event-loop turn. A frame too large for a block, or opened while another
 * is being filled in the block, gets a buffer of its own. Frames reach the socket in the order
 * they were sent.
 */
export function maskedFrameSink(write: RawFrameWrite, blockBytes = 256 * 1024, keepBlocks = 4): FrameSink {
  const free: Block[] = [];
  let block: Block | undefined;
  /** The frame being filled in `block`, if any. */
  let filling: MaskedFrame | undefined;
  /** Callbacks of the frames sent into `block` since its last write. */
  let waiting: Array<(err?: Error | null) => void> = [];
  let scheduled = false;

  const retire = (b: Block) => {
    if (!b.current && !b.failed && b.writes === 0 && free.length < keepBlocks) free.push(b);
  };
  const flush = () => {
    const b = block;
    if (!b || b.end === b.start) return;
    const bytes = b.buf.subarray(b.start, b.end);
    b.start = b.end;
    const cbs = waiting;
    waiting = [];
    b.writes++;
    write(bytes, (err) => {
      b.writes--;
      if (err) b.failed = true;
      else retire(b);
      for (const cb of cbs) cb(err);
    });
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      flush();
    });
  };
  const newBlock = () => {
    if (block) {
      block.current = false;
      retire(block);
    }
    const b = free.pop() ?? new Block(blockBytes);
    b.start = b.end = 0;
    b.current = true;
    block = b;
    return b;
  };
  const sent = (f: MaskedFrame, bytes: Buffer, cb: (err?: Error | null) => void) => {
    if (f.block) {
      filling = undefined;
      f.block.end = f.slot + bytes.length;
      waiting.push(cb);
      if (f.block.end === f.block.buf.length) flush();
      else schedule();
      return;
    }
    flush(); // what the block holds was sent before
    write(bytes, cb);
  };
  // A dropped frame's slot in the block is simply filled by the next frame.
  const dropped = (f: MaskedFrame) => {
    if (f === filling) filling = undefined;
  };
  return {
    open(payloadBytes) {
      const need = headerBytes(payloadBytes) + payloadBytes;
      if (filling || need > blockBytes) return new MaskedFrame(Buffer.allocUnsafe(need), 0, payloadBytes, undefined, sent, dropped);
      let b = block;
      if (!b || b.buf.length - b.end < need) {
        flush();
        b = newBlock();
      }
      filling = new MaskedFrame(b.buf, b.end, payloadBytes, b, sent, dropped);
      return filling;
    },
  };
}
