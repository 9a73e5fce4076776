/** What every quantizer returns for one linear W [rows, cols] (rows = out_features, cols = in_features). */
export interface QuantizedColumns {
  rows: number;
  cols: number;
  bits: number;
  /** Input columns per quantization group; 0 = one group per row. */
  groupSize: number;
  /** The order the quantizer visited the input columns in (act-order / OWQ reordering); null = 0..cols-1. */
  order: Int32Array | null;
  /** The first nQuant columns of `order` are quantized; the remaining cols - nQuant are the weak columns. */
  nQuant: number;
  /** [rows, nQuant] integer codes, in `order`. */
  codes: Uint8Array;
  /** [rows, nGroups] per-row (nGroups = 1) or per-group quantizer parameters, groups counted along `order`. */
  scale: Float32Array;
  zero: Float32Array;
  nGroups: number;
  /** Ŵ [rows, cols] in input-column order: s * (code - z) for quantized columns, fp32 weights for weak ones, plus
   * the outliers. */
  dequantized: Float32Array;
  /** GWQ-style sparse outliers (absent: none): sorted flat indices r * cols + c and their fp16-exact values; their
   * codes are the zero point (the packed part is 0 there). */
  outliers?: { index: Int32Array; values: Float32Array };
}
