/**
 * Alpaca-style instruction data (docs/ARCHITECTURE.md section 6): records {instruction, input?, output}, the
 * Stanford Alpaca prompt template, and tokenization as alpaca-lora's `generate_and_tokenize_prompt`
 * with train_on_inputs=False does it:
 *
 * - full = encode(prompt + output) with the tokenizer's normal special tokens (BOS for Llama), then
 *   EOS appended; cut to maxLength (so a cut example has no EOS, as alpaca-lora's `len < cutoff_len`).
 * - the prompt alone is encoded the same way (no EOS); its token count P is where the loss starts:
 *   HF labels are -100 on the first P positions. Our targets are the labels shifted by one
 *   (targets[t] = ids[t + 1]), so targets[0 .. P-2] are IGNORE_INDEX and targets[P-1] is the first
 *   response token. Like alpaca-lora we trust P rather than checking that the prompt's ids are a prefix
 *   of the full ids: where the tokenizer merges across the boundary the mask also covers that merged
 *   token (TinyStories-656K has "\nThe" as one token: 435 of the 2,000 alpaca-2k examples).
 */
import { InputError } from '../errors.js';
import { isObject, parseJson, readTextFile } from '../io/json-file.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import { causalExample, type Example } from './example.js';

export interface InstructionRecord {
  instruction: string;
  /** '' when the record has no `input` (or a null one). */
  input: string;
  output: string;
}

/** 'alpaca': the Stanford Alpaca template; 'none': instruction, input and output joined by "\n". */
export type PromptTemplate = 'alpaca' | 'none';

/** tatsu-lab/stanford_alpaca train.py PROMPT_DICT, verbatim. */
export const ALPACA_PROMPT_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';
export const ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:\n';

/**
 * The prompt part of a record: everything before the output. 'none' joins the non-empty instruction
 * and input with "\n" and ends with "\n", so that words of adjacent fields are not glued together.
 */
export function instructionPrompt(record: InstructionRecord, template: PromptTemplate): string {
  if (template === 'none')
    return [record.instruction, record.input]
      .filter((s) => s !== '')
      .map((s) => `${s}\n`)
      .join('');
  const pattern = record.input === '' ? ALPACA_PROMPT_NO_INPUT : ALPACA_PROMPT_INPUT;
  // a function replacement, so "$&" etc. in user text stay literal
  return pattern.replace('{instruction}', () => record.instruction).replace('{input}', () => record.input);
}

/**
 * Validates one parsed record; `where` names it in errors ("index 12", "line 13", "row 4").
 * `instruction` and `output` must be strings; `input` may be absent or null (read as '').
 */
export function instructionRecord(file: string, value: unknown, where: string): InstructionRecord {
  if (!isObject(value)) {
    throw new InputError(
      file,
      where,
      'expected an object with string "instruction" and "output" fields (and an optional "input")',
    );
  }
  const field = (key: 'instruction' | 'input' | 'output', optional: boolean): string => {
    const v = value[key];
    if (v === undefined || v === null) {
      if (optional) return '';
      throw new InputError(
        file,
        where,
        `missing "${key}"; expected an object with string "instruction" and "output" fields`,
      );
    }
    if (typeof v !== 'string')
      throw new InputError(
        file,
        where,
        `"${key}" is ${Array.isArray(v) ? 'an array' : `a ${typeof v}`}, expected a string`,
      );
    return v;
  };
  return { instruction: field('instruction', false), input: field('input', true), output: field('output', false) };
}

/**
 * Records of a JSON array file (the Alpaca release) or a JSON-lines file (one object a line; blank
 * lines skipped). Errors name the array index or the 1-based line.
 */
export function readInstructionRecords(file: string): InstructionRecord[] {
  const text = readTextFile(file);
  if (text.trimStart().startsWith('[')) {
    const value = parseJson(file, text);
    if (!Array.isArray(value))
      throw new InputError(file, 'file', 'expected a JSON array of {instruction, input, output} objects');
    return value.map((v, i) => instructionRecord(file, v, `index ${i}`));
  }
  const records: InstructionRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = parseJson(file, line, `line ${i + 1}`);
    } catch (e) {
      if (isObject(wholeJson(text)))
        throw new InputError(
          file,
          'file',
          'is one JSON object; expected a JSON array of records or one record per line',
        );
      throw e;
    }
    records.push(instructionRecord(file, value, `line ${i + 1}`));
  });
  return records;
}

/** The whole text parsed as JSON, or undefined: only to explain a JSON-lines error better. */
function wholeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** alpaca-lora's tokenization of one record; `truncated` when prompt + output + EOS exceeded maxLength. */
export function tokenizeInstruction(
  record: InstructionRecord,
  template: PromptTemplate,
  tokenizer: TextTokenizer,
  maxLength: number,
): { example: Example; truncated: boolean } {
  const prompt = instructionPrompt(record, template);
  const text = tokenizer.encode(prompt + record.output);
  const eos = tokenizer.eosTokenId;
  const fullLength = text.length + (eos === null ? 0 : 1);
  const ids = new Int32Array(Math.min(fullLength, maxLength));
  ids.set(text.subarray(0, ids.length));
  if (eos !== null && fullLength <= maxLength) ids[fullLength - 1] = eos;
  const promptLength = tokenizer.encode(prompt).length;
  return { example: causalExample(ids, promptLength), truncated: fullLength > maxLength };
}
