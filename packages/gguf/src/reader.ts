import { open } from 'node:fs/promises';
import {
  alignUp,
  DEFAULT_ALIGNMENT,
  FILE_TYPES,
  GGUF_MAGIC,
  SCALAR_BYTES,
  SUPPORTED_VERSIONS,
  TENSOR_TYPES,
  tensorBytes,
  ValueType,
} from './format.js';

export type GgufErrorCode = 'not_gguf' | 'unsupported_version' | 'truncated' | 'invalid';

export class GgufError extends Error {
  constructor(
    readonly code: GgufErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'GgufError';
  }
}

export type GgufScalar = number | bigint | string | boolean;
/** Arrays longer than this are summarised (a 150k-token vocabulary does not belong in a DB row). */
export const MAX_KEPT_ARRAY = 64;
export type GgufValue = GgufScalar | GgufScalar[] | { arrayOf: string; length: number };

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  type: number;
  offset: number;
}

export interface GgufInfo {
  version: number;
  metadata: Record<string, GgufValue>;
  tensors: GgufTensorInfo[];
  /** Where tensor data starts in the file. */
  dataOffset: number;
  fileBytes: number;
  architecture: string | null;
  name: string | null;
  contextLength: number | null;
  blockCount: number | null;
  embeddingLength: number | null;
  quantization: string;
  parameterCount: number;
}

/** Thrown by the cursor when the buffer ends before the structure does. */
class EndOfBuffer extends Error {}

class Cursor {
  offset = 0;
  constructor(private readonly buf: Buffer) {}

  private take(bytes: number): number {
    if (this.offset + bytes > this.buf.length) throw new EndOfBuffer();
    const at = this.offset;
    this.offset += bytes;
    return at;
  }

  u32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }

  /** u64 as a number; GGUF counts and offsets beyond 2^53 mean a corrupt file. */
  u64(): number {
    const value = this.buf.readBigUInt64LE(this.take(8));
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError('invalid', `value ${value} is out of range`);
    return Number(value);
  }

  string(): string {
    const length = this.u64();
    const at = this.take(length);
    return this.buf.toString('utf8', at, at + length);
  }

  scalar(type: ValueType): GgufScalar {
    const size = SCALAR_BYTES[type];
    if (type === ValueType.STRING) return this.string();
    if (size === undefined) throw new GgufError('invalid', `unknown metadata value type ${type}`);
    const at = this.take(size);
    switch (type) {
      case ValueType.UINT8:
        return this.buf.readUInt8(at);
      case ValueType.INT8:
        return this.buf.readInt8(at);
      case ValueType.BOOL:
        return this.buf.readUInt8(at) !== 0;
      case ValueType.UINT16:
        return this.buf.readUInt16LE(at);
      case ValueType.INT16:
        return this.buf.readInt16LE(at);
      case ValueType.UINT32:
        return this.buf.readUInt32LE(at);
      case ValueType.INT32:
        return this.buf.readInt32LE(at);
      case ValueType.FLOAT32:
        return this.buf.readFloatLE(at);
      case ValueType.FLOAT64:
        return this.buf.readDoubleLE(at);
      case ValueType.UINT64:
        return narrow(this.buf.readBigUInt64LE(at));
      default:
        return narrow(this.buf.readBigInt64LE(at));
    }
  }

  value(type: ValueType): GgufValue {
    if (type !== ValueType.ARRAY) return this.scalar(type);
    const itemType = this.u32() as ValueType;
    const length = this.u64();
    if (itemType === ValueType.ARRAY) throw new GgufError('invalid', 'nested metadata arrays are not supported');
    const size = SCALAR_BYTES[itemType];
    if (size !== undefined && length > MAX_KEPT_ARRAY) {
      this.take(size * length);
      return { arrayOf: ValueType[itemType] ?? String(itemType), length };
    }
    const items: GgufScalar[] = [];
    for (let i = 0; i < length; i++) {
      const item = this.scalar(itemType);
      if (length <= MAX_KEPT_ARRAY) items.push(item);
    }
    return length <= MAX_KEPT_ARRAY ? items : { arrayOf: ValueType[itemType] ?? String(itemType), length };
  }
}

function narrow(value: bigint): number | bigint {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value;
}

function numberOrNull(value: GgufValue | undefined): number | null {
  return typeof value === 'number' ? value : null;
}

function quantizationOf(metadata: Record<string, GgufValue>, tensors: GgufTensorInfo[]): string {
  const fileType = metadata['general.file_type'];
  if (typeof fileType === 'number' && FILE_TYPES[fileType]) return FILE_TYPES[fileType];
  // No (known) file type: name it after the type holding the most bytes.
  const bytesByType = new Map<number, number>();
  for (const t of tensors) bytesByType.set(t.type, (bytesByType.get(t.type) ?? 0) + (tensorBytes(t.type, t.dims) ?? 0));
  const [dominant] = [...bytesByType.entries()].sort((a, b) => b[1] - a[1]);
  return dominant ? (TENSOR_TYPES[dominant[0]]?.name ?? `type ${dominant[0]}`) : 'unknown';
}

/**
 * Parses a GGUF header held in `buf`. `fileBytes` is the whole file's size, to check that every
 * tensor's data fits in it. Throws EndOfBuffer when `buf` ends inside the header.
 */
function parseHeader(buf: Buffer, fileBytes: number): GgufInfo {
  if (buf.length < 4 || buf.toString('latin1', 0, 4) !== GGUF_MAGIC) {
    if (buf.length < 4 && fileBytes >= 4) throw new EndOfBuffer();
    throw new GgufError('not_gguf', 'not a GGUF file (the first 4 bytes are not "GGUF")');
  }
  const cursor = new Cursor(buf);
  cursor.offset = 4;
  const version = cursor.u32();
  if (!SUPPORTED_VERSIONS.includes(version)) {
    throw new GgufError('unsupported_version', `GGUF version ${version} is not supported (supported: 2, 3)`);
  }
  const tensorCount = cursor.u64();
  const kvCount = cursor.u64();
  const metadata: Record<string, GgufValue> = {};
  for (let i = 0; i < kvCount; i++) {
    const key = cursor.string();
    metadata[key] = cursor.value(cursor.u32() as ValueType);
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = cursor.string();
    const nDims = cursor.u32();
    if (nDims > 8) throw new GgufError('invalid', `tensor ${name} claims ${nDims} dimensions`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(cursor.u64());
    tensors.push({ name, dims, type: cursor.u32(), offset: cursor.u64() });
  }
  const alignment = numberOrNull(metadata['general.alignment']) ?? DEFAULT_ALIGNMENT;
  const dataOffset = alignUp(cursor.offset, alignment);
  let dataEnd = dataOffset;
  for (const t of tensors) {
    const bytes = tensorBytes(t.type, t.dims);
    if (bytes !== null) dataEnd = Math.max(dataEnd, dataOffset + t.offset + bytes);
  }
  if (dataEnd > fileBytes) {
    throw new GgufError(
      'truncated',
      `GGUF file is truncated: its tensors need ${dataEnd} bytes, the file has ${fileBytes}`,
    );
  }
  const arch = metadata['general.architecture'];
  const architecture = typeof arch === 'string' ? arch : null;
  const archKey = (key: string) => (architecture ? numberOrNull(metadata[`${architecture}.${key}`]) : null);
  const name = metadata['general.name'];
  return {
    version,
    metadata,
    tensors,
    dataOffset,
    fileBytes,
    architecture,
    name: typeof name === 'string' ? name : null,
    contextLength: archKey('context_length'),
    blockCount: archKey('block_count'),
    embeddingLength: archKey('embedding_length'),
    quantization: quantizationOf(metadata, tensors),
    parameterCount: tensors.reduce((sum, t) => sum + t.dims.reduce((a, b) => a * b, 1), 0),
  };
}

/** Parses a whole GGUF file held in memory. */
export function parseGguf(buf: Buffer): GgufInfo {
  try {
    return parseHeader(buf, buf.length);
  } catch (err) {
    if (err instanceof EndOfBuffer)
      throw new GgufError('truncated', 'GGUF file is truncated: it ends inside its header');
    throw err;
  }
}

/**
 * Reads and validates a GGUF file's header without loading its tensors: reads a little, and more
 * only when the header (a large vocabulary, say) runs past what was read.
 */
export async function readGgufFile(path: string, maxHeaderBytes = 256 * 1024 * 1024): Promise<GgufInfo> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    let want = Math.min(size, 1024 * 1024);
    for (;;) {
      const buf = Buffer.alloc(want);
      const { bytesRead } = await handle.read(buf, 0, want, 0);
      try {
        return parseHeader(buf.subarray(0, bytesRead), size);
      } catch (err) {
        if (!(err instanceof EndOfBuffer)) throw err;
        if (bytesRead >= size) throw new GgufError('truncated', 'GGUF file is truncated: it ends inside its header');
        if (want >= maxHeaderBytes)
          throw new GgufError('invalid', `GGUF header is larger than ${maxHeaderBytes} bytes`);
        want = Math.min(size, want * 4, maxHeaderBytes);
      }
    }
  } finally {
    await handle.close();
  }
}
