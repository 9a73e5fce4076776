/**
 * OpenAI's `stop` on streamed text: the text is cut before the first occurrence of any stop string (which is
 * not returned). While streaming, the end of the text that could still become the start of a stop string is held
 * back, so no text after a stop ever leaves the server.
 */
export class StopMatcher {
  private pending = '';
  stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** Adds `piece`; returns the text that can be released now (all of it before a stop, once one is found). */
  push(piece: string): string {
    if (this.stopped) return '';
    this.pending += piece;
    const cut = this.firstStop();
    if (cut !== null) {
      this.stopped = true;
      const out = this.pending.slice(0, cut);
      this.pending = '';
      return out;
    }
    const keep = this.heldBack();
    const out = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return out;
  }

  /** The text held back, released when generation ends without a stop. */
  flush(): string {
    const out = this.pending;
    this.pending = '';
    return out;
  }

  private firstStop(): number | null {
    let first: number | null = null;
    for (const s of this.stops) {
      const at = s === '' ? -1 : this.pending.indexOf(s);
      if (at >= 0 && (first === null || at < first)) first = at;
    }
    return first;
  }

  /** The length of the longest end of the pending text that is a proper prefix of a stop string. */
  private heldBack(): number {
    let keep = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > keep; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    return keep;
  }
}
