/**
 * src/export/gguf-quants.ts against llama.cpp's own Python quantizers, bit for bit. The expected bytes below are gguf-py
 * 0.19.0's (`pip install gguf==0.19.0`), made by
 *   `gguf.quants.quantize(np.array(blocks(), dtype=np.float32).reshape(1, -1), GGMLQuantizationType.<T>).tobytes().hex()`
 * over the eight blocks `blocks()` builds here (the same expressions in Python, each element rounded to fp32): a
 * general block, zeros, Q8_0's rounding ties (x = k + 0.5 with d = 1), a negative largest element (Q4_0's signed d),
 * values whose d is an f16 subnormal, a constant block (Q4_1's d = 0), and two blocks of non-dyadic values.
 */
import { describe, expect, it } from 'vitest';
import { GGML_TYPES, type GgmlBlockType, ggmlBytes, ggmlQuantize } from '../../src/export/gguf-quants.js';

function blocks(): Float32Array {
  const b: number[][] = [
    Array.from({ length: 32 }, (_, i) => (((i * 37 + 11) % 255) - 127) / 64),
    new Array(32).fill(0),
    [...Array.from({ length: 31 }, (_, j) => j - 15.5), 127],
    Array.from({ length: 32 }, (_, j) => -(j + 1) / 4),
    Array.from({ length: 32 }, (_, j) => (j - 16) * 2 ** -20),
    new Array(32).fill(0.75),
    Array.from({ length: 32 }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5),
    Array.from({ length: 32 }, (_, i) => (((i + 5) * 104729) % 2001) / 1000 - 1.0),
  ];
  return Float32Array.from(b.flat());
}

const GGUF_PY: Record<GgmlBlockType, string> = {
  Q8_0: '6f2383abd3fb224a7287afd7ff274f768cb4db032b537b90b8e0082f577f94bce40c00000000000000000000000000000000000000000000000000000000000000000000003cf0f1f2f3f4f5f6f7f8f9fafbfcfdfeff0102030405060708090a0b0c0d0e0f7f082cfcf8f4f0ece8e4e0dcd8d4d0ccc8c4c0bdb9b5b1ada9a5a19d9995918d898581020081899199a1a9b1b9c0c8d0d8e0e8f0f8000810182028303840474f575f676f770c1e7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f081c816a56412d1804efdac6b19d88725d48341f0bf6e2cdb8a48f7964503b2612fd941f3481dc3885e13c89e5408de94491ed4895f14c99f5509df954a1fd58a5015caa',
  Q4_0: '60b3af8d5b3806f3d1af8d5b3806f3c1af7d008088888888888888888888888888888888f0cb89898989898989897878787878787808003c484837373737262626261515151504042000809191a2a2b3b3c4c4d5d5e6e6f7f7f800ae00000000000000000000000000000000002cb0af9d7c6b5a382716f4e3d2c0af9e8d852f1b70d62c70d62c81d62c81e72c81e73d',
  Q4_1: 'cd3340bf5082a5c7f91c3e6083a5d7fa1c3e61830000000000000000000000000000000000000000c048c0cb202020202021212131313131313131f2223800c87f7f6e6e5d5d4c4c3b3b2a2a191908082100008180809191a2a2b3b3c4c4d5d5e6e6f7f70000003a00000000000000000000000000000000292c00b8b0ae8d7c6a59382715f4e3d2b0af9d8cee2e85bb1c80e62d80e72d81e72d81f72d91f73e',
};

describe('ggml block quantizers', () => {
  it.each(Object.keys(GGUF_PY) as GgmlBlockType[])('%s equals gguf-py 0.19.0 byte for byte', (type) => {
    const x = blocks();
    const got = ggmlQuantize(x, type);
    expect(got.length).toBe((x.length / 32) * GGML_TYPES[type].blockBytes);
    expect(got.length).toBe(ggmlBytes(type, x.length));
    expect(Buffer.from(got).toString('hex')).toBe(GGUF_PY[type]);
  });

  it('refuses a length that is not whole blocks', () => {
    expect(() => ggmlQuantize(new Float32Array(33), 'Q8_0')).toThrow(/33 elements/);
  });
});
