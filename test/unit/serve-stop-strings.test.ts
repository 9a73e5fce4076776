/**
 * The stop strings of `wct serve` (src/serve/stop-strings.ts) against a reference written here: the text is
 * read piece by piece as it is generated; at the first piece after which the text so far contains a stop string,
 * generation stops and the text is cut before the earliest stop in it. Whatever was released piece by piece,
 * plus the flush at the end when nothing stopped, must be exactly that text, for any split into pieces.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../../src/serve/stop-strings.js';

function reference(pieces: string[], stops: string[]): { text: string; stopped: boolean } {
  let text = '';
  for (const piece of pieces) {
    text += piece;
    const at = stops.filter((s) => s !== '' && text.includes(s)).map((s) => text.indexOf(s));
    if (at.length > 0) return { text: text.slice(0, Math.min(...at)), stopped: true };
  }
  return { text, stopped: false };
}

function released(pieces: string[], stops: string[]): { text: string; stopped: boolean } {
  const m = new StopMatcher(stops);
  let text = '';
  for (const piece of pieces) {
    text += m.push(piece);
    if (m.stopped) return { text, stopped: true };
  }
  return { text: text + m.flush(), stopped: false };
}

const letters = fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', '\n'), maxLength: 6 });

describe('StopMatcher', () => {
  it('releases the text before the first stop string to appear, for any split into pieces', () => {
    fc.assert(
      fc.property(fc.array(letters, { maxLength: 12 }), fc.array(letters, { maxLength: 4 }), (pieces, stops) => {
        expect(released(pieces, stops)).toEqual(reference(pieces, stops));
      }),
      { numRuns: 2000 },
    );
  });

  it('holds back a possible start of a stop string and releases it when it does not become one', () => {
    const m = new StopMatcher(['\nUser:']);
    expect(m.push('Hello\nUs')).toBe('Hello');
    expect(m.push('ually')).toBe('\nUsually');
    expect(m.push(' more\nUser: x')).toBe(' more');
    expect(m.stopped).toBe(true);
  });
});
