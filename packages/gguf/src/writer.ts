import { writeFile } from 'node:fs/promises';
import { alignUp, DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, ValueType } from './format.js';

export type MetadataValue =
  | { type: ValueType.UINT32 | ValueType.INT32 | ValueType.FLOAT32 | ValueType.UINT64; value: number }
  | { type: ValueType.BOOL; value: boolean }
  | { type: ValueType.STRING; value: string }
  | { type: ValueType.ARRAY; itemType: ValueType.STRING; value: string[] }
  | { type: ValueType.ARRAY; itemType: ValueType.FLOAT32 | ValueType.INT32; value: number[] };

export const u32 = (value: number): MetadataValue => ({ type: ValueType.UINT32, value });
export const f32 = (value: number): MetadataValue => ({ type: ValueType.FLOAT32, value });
export const str = (value: string): MetadataValue => ({ type: ValueType.STRING, value });
export const bool = (value: boolean): MetadataValue => ({ type: ValueType.BOOL, value });
export const strings = (value: string[]): MetadataValue => ({
  type: ValueType.ARRAY,
  itemType: ValueType.STRING,
  value,
});
export const floats = (value: number[]): MetadataValue => ({
  type: ValueType.ARRAY,
  itemType: ValueType.FLOAT32,
  value,
});
export const ints = (value: number[]): MetadataValue => ({ type: ValueType.ARRAY, itemType: ValueType.INT32, value });

export interface F32Tensor {
  name: string;
  /** ggml order: dims[0] is the fastest-moving dimension. */
  dims: number[];
  data: Float32Array;
}

/** Appends little-endian values to a growing list of chunks. */
class ByteWriter {
  private readonly chunks: Buffer[] = [];
  length = 0;

  private push(buf: Buffer): void {
    this.chunks.push(buf);
    this.length += buf.length;
  }

  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }

  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }

  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }

  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }

  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }

  raw(buf: Buffer): void {
    this.push(buf);
  }

  padTo(alignment: number): void {
    const pad = alignUp(this.length, alignment) - this.length;
    if (pad > 0) this.push(Buffer.alloc(pad));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

function writeValue(out: ByteWriter, value: MetadataValue): void {
  out.u32(value.type);
  switch (value.type) {
    case ValueType.UINT32:
      return out.u32(value.value);
    case ValueType.INT32:
      return out.i32(value.value);
    case ValueType.UINT64:
      return out.u64(value.value);
    case ValueType.FLOAT32:
      return out.f32(value.value);
    case ValueType.BOOL:
      return out.raw(Buffer.from([value.value ? 1 : 0]));
    case ValueType.STRING:
      return out.string(value.value);
    case ValueType.ARRAY: {
      out.u32(value.itemType);
      out.u64(value.value.length);
      for (const item of value.value) {
        if (typeof item === 'string') out.string(item);
        else if (value.itemType === ValueType.INT32) out.i32(item);
        else out.f32(item);
      }
    }
  }
}

/** Serialises a GGUF v3 file with f32 tensors. */
export function encodeGguf(metadata: Record<string, MetadataValue>, tensors: F32Tensor[]): Buffer {
  const out = new ByteWriter();
  out.raw(Buffer.from(GGUF_MAGIC, 'latin1'));
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(Object.keys(metadata).length);
  for (const [key, value] of Object.entries(metadata)) {
    out.string(key);
    writeValue(out, value);
  }
  let offset = 0;
  for (const tensor of tensors) {
    const elements = tensor.dims.reduce((a, b) => a * b, 1);
    if (elements !== tensor.data.length) {
      throw new Error(`tensor ${tensor.name}: dims give ${elements} elements, data has ${tensor.data.length}`);
    }
    out.string(tensor.name);
    out.u32(tensor.dims.length);
    tensor.dims.forEach((d) => out.u64(d));
    out.u32(0); // GGML_TYPE_F32
    out.u64(offset);
    offset = alignUp(offset + tensor.data.byteLength, DEFAULT_ALIGNMENT);
  }
  out.padTo(DEFAULT_ALIGNMENT);
  for (const tensor of tensors) {
    out.raw(Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    out.padTo(DEFAULT_ALIGNMENT);
  }
  return out.toBuffer();
}

export async function writeGguf(path: string, metadata: Record<string, MetadataValue>, tensors: F32Tensor[]) {
  await writeFile(path, encodeGguf(metadata, tensors));
}
