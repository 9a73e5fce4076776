/**
 * The terminal's progress bars (src/cli/progress.ts) on a fake stream: on a terminal every update redraws the bar
 * at once (no timer), the bar ends drawn at its total followed by the phase summary with its time, lines logged
 * while a bar is live clear it, print, and redraw it; off a terminal only the logged lines and summaries appear.
 */
import { describe, expect, it } from 'vitest';
import { formatSeconds, Terminal, type ProgressStream } from '../../src/cli/progress.js';

const CLEAR = '\r\x1b[2K';

function fakeStream(isTTY: boolean, columns = 200): ProgressStream & { chunks: string[] } {
  const chunks: string[] = [];
  return { isTTY, columns, chunks, write: (c: string) => chunks.push(c) };
}

/** A clock the test moves: milliseconds. */
function fakeClock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('Terminal progress', () => {
  it('redraws on every update, ends at the total, and prints the summary with its time', () => {
    const s = fakeStream(true);
    const clock = fakeClock();
    const term = new Terminal(s, clock.now);
    const bar = term.start('quantize');
    expect(s.chunks).toEqual([]); // nothing drawn before the first update
    for (let d = 1; d <= 15; d++) {
      clock.advance(100);
      bar.update(d, 16, `block ${Math.ceil(d / 2)}/8: quantize`);
      expect(s.chunks).toHaveLength(d); // one redraw per update, synchronously
      expect(s.chunks.at(-1)!.startsWith(`${CLEAR}quantize [`)).toBe(true);
      expect(s.chunks.at(-1)).toMatch(new RegExp(`quantize \\[[#-]{24}\\] ${d}/16 `));
    }
    expect(s.chunks.at(-1)).toContain('| block 8/8: quantize');
    clock.advance(300);
    bar.end('8 blocks');
    const tail = s.chunks.slice(15);
    expect(tail[0]).toBe(`${CLEAR}quantize [${'#'.repeat(24)}] 16/16 100% ETA 0s | block 8/8: quantize`);
    expect(tail.slice(1)).toEqual(['\n', 'quantize: 8 blocks in 1.8 s\n']);
  });

  it('shows the ETA from the rate since the first update', () => {
    const s = fakeStream(true);
    const clock = fakeClock();
    const bar = new Terminal(s, clock.now).start('train');
    bar.update(10, 110); // a resumed run: starts at 10
    clock.advance(2000);
    bar.update(20, 110); // 10 steps in 2 s: 90 left = 18 s
    expect(s.chunks.at(-1)).toContain('20/110 18% ETA 18s');
  });

  it('prints logged lines through the live bar: clear, line, redraw', () => {
    const s = fakeStream(true);
    const term = new Terminal(s, fakeClock().now);
    const bar = term.start('train');
    bar.update(3, 10, 'loss 2.0000');
    const drawn = s.chunks.at(-1)!;
    term.log('note: 4 examples were truncated');
    expect(s.chunks.slice(-3)).toEqual([CLEAR, 'note: 4 examples were truncated\n', drawn]);
    term.log('second');
    expect(s.chunks.slice(-3)).toEqual([CLEAR, 'second\n', drawn]);
  });

  it('a new phase ends the previous bar where it was; a log with no live bar is one line', () => {
    const s = fakeStream(true);
    const term = new Terminal(s, fakeClock().now);
    term.start('calibration sampling').update(2, 4);
    term.start('quantize');
    expect(s.chunks.at(-1)).toBe('\n');
    term.log('plain');
    expect(s.chunks.at(-1)).toBe('plain\n');
    expect(s.chunks.at(-2)).toBe('\n');
  });

  it('a bar whose total is not known yet shows its label and status only', () => {
    const s = fakeStream(true);
    new Terminal(s, fakeClock().now).start('evaluation c4').update(0, 0, 'tokenizing');
    expect(s.chunks).toEqual([`${CLEAR}evaluation c4 [${'-'.repeat(24)}] | tokenizing`]);
  });

  it('cuts the bar to the terminal width', () => {
    const s = fakeStream(true, 40);
    new Terminal(s, fakeClock().now).start('evaluation wikitext2').update(1, 9, 'a long status text');
    expect(s.chunks[0].length).toBe(CLEAR.length + 39);
  });

  it('off a terminal: no bars, but the logged lines and the summaries', () => {
    const s = fakeStream(false);
    const clock = fakeClock();
    const term = new Terminal(s, clock.now);
    const bar = term.start('train');
    for (let d = 1; d <= 5; d++) bar.update(d, 5, 'loss 1');
    term.log('note: x');
    clock.advance(95_000);
    bar.end('5 steps', 'mean loss 1.2340');
    expect(s.chunks).toEqual(['note: x\n', 'train: 5 steps in 95.0 s, mean loss 1.2340\n']);
  });

  it('formats seconds for summaries', () => {
    expect(formatSeconds(0.42)).toBe('0.4 s');
    expect(formatSeconds(12.34)).toBe('12.3 s');
    expect(formatSeconds(954.4)).toBe('954 s');
    expect(formatSeconds(3725)).toBe('1 h 02 min');
  });
});
