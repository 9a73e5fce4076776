/**
 * One completion as the API serves it: generate() from the prompt ids with the request's sampling, the text
 * released piece by piece (src/models/text-stream.ts) through the stop strings (./stop-strings.ts), each piece
 * with the ids generated since the last one. finish_reason is "stop" at the end-of-sequence token or a stop
 * string, else "length". An aborted signal (the client went away, the server is shutting down) stops decoding
 * before the next token.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { generate } from '../models/generate.js';
import { TextStream } from '../models/text-stream.js';
import type { TextTokenizer } from '../io/tokenizer.js';
import type { CausalLM } from '../models/model.js';
import { StopMatcher } from './stop-strings.js';

export interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: readonly string[];
}

export interface Piece {
  text: string;
  tokenIds: number[];
}

export interface CompletionResult {
  text: string;
  tokenIds: number[];
  finishReason: 'stop' | 'length';
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** Generates from `prompt`, calling `onPiece` as text is released; resolves with the whole result. */
export async function complete(
  model: CausalLM,
  tokenizer: TextTokenizer,
  prompt: Int32Array,
  sampling: Sampling,
  signal: AbortSignal,
  onPiece: (piece: Piece) => void,
): Promise<CompletionResult> {
  const text = new TextStream(tokenizer, prompt);
  const stop = new StopMatcher(sampling.stop);
  const { maxTokens, temperature, topP, seed } = sampling;
  const eos = tokenizer.eosTokenId;
  let out = '';
  let unsent: number[] = [];
  const send = (piece: string) => {
    if (piece === '' && unsent.length === 0) return;
    out += piece;
    onPiece({ text: piece, tokenIds: unsent });
    unsent = [];
  };
  let sawEos = false;
  for await (const id of generate(model, prompt, {
    maxNewTokens: maxTokens,
    temperature,
    topP,
    seed,
    eosTokenId: eos,
  })) {
    unsent.push(id);
    sawEos = id === eos;
    const piece = stop.push(text.push(id));
    if (piece !== '' || stop.stopped) send(piece);
    if (stop.stopped) break;
    await nextTurn(); // let the server see a closed connection or a signal between tokens
    if (signal.aborted) break;
  }
  if (!stop.stopped) {
    const tail = stop.push(text.flush());
    send(stop.stopped ? tail : tail + stop.flush());
  }
  const n = text.tokens().length;
  return {
    text: out,
    tokenIds: [...text.tokens()],
    finishReason: sawEos || stop.stopped ? 'stop' : 'length',
    usage: { prompt_tokens: prompt.length, completion_tokens: n, total_tokens: prompt.length + n },
  };
}
