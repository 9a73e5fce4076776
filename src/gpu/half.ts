/**
 * Half storage on the device: 16-bit floats (IEEE f16 or bfloat16) two to a 32-bit word, element 2i in the low
 * half, element 2i + 1 in the high half (the bytes of a little-endian Uint16Array as they are). Frozen weights
 * live in it: a packed weight's scales and frozen weak columns, and the dense weights of f16/bf16 checkpoints
 * (the gemm's weight operand, the embedding table).
 *
 * Kernels read it through ONE load function per binding, `fn NAME_at(i: u32) -> f32`, chosen when the pipeline is
 * built (`loadWgsl`), so the rest of a kernel is the same for every format:
 *   f32          NAME: array<f32>, NAME[i]
 *   f16-u32      NAME: array<u32>, unpack2x16float(word)[i & 1]   (devices without 'shader-f16', e.g. llvmpipe)
 *   f16-native   NAME: array<f16>, f32(NAME[i]), the module opening with `enable f16;` (devices with it)
 *   bf16-u32     NAME: array<u32>, bitcast<f32>(the half moved to the top 16 bits)
 * src/gpu/device.ts requests 'shader-f16' where the adapter has it; `readPath` picks by the device's features.
 *
 * On the host a frozen tensor goes to the device in half only when every value is exactly representable
 * (`exactHalf`): values read from an F16/BF16 checkpoint always are, so the device computes with the CPU's
 * values and only the memory halves.
 */
import { f16ToF32Array, f32ToF16Array } from '../io/dtype.js';

/** The 16-bit float formats of half storage. */
export type HalfFormat = 'f16' | 'bf16';
/** The element format of a GpuArray. */
export type GpuFormat = 'f32' | HalfFormat;

/** How a kernel reads one binding (see the top of this file). */
export type ReadPath = 'f32' | 'f16-u32' | 'f16-native' | 'bf16-u32';

/** The device feature that lets WGSL declare f16 values. */
export const SHADER_F16 = 'shader-f16';

/** The way `device` reads storage of `format`: native f16 where the device has 'shader-f16', else u32 words. */
export function readPath(device: Pick<GPUDevice, 'features'>, format: GpuFormat): ReadPath {
  if (format === 'f32') return 'f32';
  if (format === 'bf16') return 'bf16-u32';
  return device.features.has(SHADER_F16) ? 'f16-native' : 'f16-u32';
}

/** The format a read path reads. */
export function formatOf(path: ReadPath): GpuFormat {
  return path === 'f32' ? 'f32' : path === 'bf16-u32' ? 'bf16' : 'f16';
}

const ELEMENT: Record<ReadPath, string> = { f32: 'f32', 'f16-u32': 'u32', 'f16-native': 'f16', 'bf16-u32': 'u32' };

const LOAD: Record<ReadPath, (name: string) => string> = {
  f32: (n) => `return ${n}[i];`,
  'f16-u32': (n) => `return unpack2x16float(${n}[i >> 1u])[i & 1u];`,
  'f16-native': (n) => `return f32(${n}[i]);`,
  'bf16-u32': (n) => `let w = ${n}[i >> 1u]; return bitcast<f32>(select(w << 16u, w & 0xffff0000u, (i & 1u) == 1u));`,
};

/**
 * WGSL of a read-only storage binding `name` at `binding` in the given read path, and its load function
 * `fn name_at(i: u32) -> f32` (element i as f32; exact for every path).
 */
export function loadWgsl(path: ReadPath, binding: number, name: string): string {
  return /* wgsl */ `
@group(0) @binding(${binding}) var<storage, read> ${name}: array<${ELEMENT[path]}>;
fn ${name}_at(i: u32) -> f32 { ${LOAD[path](name)} }
`;
}

/** The directive a module needs first when one of its bindings is read as native f16. */
export function enableWgsl(paths: readonly ReadPath[]): string {
  return paths.includes('f16-native') ? 'enable f16;\n' : '';
}

/** Kernels built per combination of read paths on first use (dispatch compiles each pipeline once per device). */
export function variants<K>(build: (...paths: ReadPath[]) => K): (...paths: ReadPath[]) => K {
  const built = new Map<string, K>();
  return (...paths) => {
    const key = paths.join(',');
    let k = built.get(key);
    if (k === undefined) {
      k = build(...paths);
      built.set(key, k);
    }
    return k;
  };
}

/** The 16-bit patterns of `values` in `format` when every value is exact in it, else null. */
export function exactHalf(values: Float32Array, format: HalfFormat): Uint16Array | null {
  if (format === 'bf16') {
    const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const out = new Uint16Array(values.length);
    for (let i = 0; i < words.length; i++) {
      if ((words[i] & 0xffff) !== 0) return null;
      out[i] = words[i] >>> 16;
    }
    return out;
  }
  const bits = f32ToF16Array(values);
  const back = f16ToF32Array(bits);
  for (let i = 0; i < values.length; i++) if (!Object.is(back[i], values[i])) return null;
  return bits;
}
