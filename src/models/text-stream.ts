/**
 * Incremental detokenization of a generated continuation. Text is decoded as prompt + continuation together
 * (SentencePiece-style tokenizers strip a leading space when a piece is decoded alone) and only what follows the
 * decoded prompt is kept; a piece is released once the text so far no longer ends in U+FFFD (a character whose
 * bytes span several tokens is complete) and still extends what was released before. `wct generate`, `wct chat`
 * and `wct serve` read their text from here.
 */
import type { TextTokenizer } from '../io/tokenizer.js';

export class TextStream {
  private readonly ids: number[] = [];
  private readonly promptLength: number;
  private released = '';

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly prompt: ArrayLike<number>,
  ) {
    this.promptLength = this.decodeTail().length;
  }

  /** Adds one generated id; returns the new text it makes complete ('' while a character is incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.text();
    if (!text.startsWith(this.released) || text.endsWith('\uFFFD')) return '';
    const piece = text.slice(this.released.length);
    this.released = text;
    return piece;
  }

  /** The text not released yet (an incomplete last character as U+FFFD), for when generation has ended. */
  flush(): string {
    const piece = this.text().slice(this.released.length);
    this.released += piece;
    return piece;
  }

  /** The whole continuation decoded so far (an incomplete last character included, as U+FFFD). */
  text(): string {
    return this.decodeTail().slice(this.promptLength);
  }

  /** The ids pushed so far. */
  tokens(): readonly number[] {
    return this.ids;
  }

  private decodeTail(): string {
    return this.tokenizer.decode([...Array.from(this.prompt), ...this.ids], { skipSpecialTokens: true });
  }
}
