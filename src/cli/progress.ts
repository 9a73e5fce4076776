/**
 * The terminal side of src/util/phases.ts: one progress bar at a time on stderr, redrawn on every update (the
 * library's loops are synchronous, so a timer would never fire), ended at its total, followed by the phase's
 * one-line summary (`quantize: 8 blocks in 12.3 s`). Lines logged while a bar is live clear it, print, and redraw
 * it below. When the stream is not a terminal the bars are silent and only the summaries and logged lines are
 * printed (logs and tests stay readable; stdout, where --json goes, is never written).
 */
import type { PhaseProgress, Phases } from '../util/phases.js';

/** What the terminal writes to: process.stderr, or a fake in tests. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): unknown;
}

const BAR_WIDTH = 24;
const CLEAR_LINE = '\r\x1b[2K';

/** Seconds as the summaries print them: 0.4 s, 12.3 s, 95 s, 1 h 02 min. */
export function formatSeconds(s: number): string {
  if (s < 100) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${s.toFixed(0)} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

function formatEta(s: number): string {
  if (!Number.isFinite(s)) return '--';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

interface LiveBar {
  label: string;
  done: number;
  total: number;
  status: string;
  started: number;
  /** `done` at the first update (a resumed run starts part way), for the rate behind the ETA. */
  firstDone: number | null;
  firstAt: number;
}

export class Terminal implements Phases {
  private live: LiveBar | null = null;
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream = process.stderr,
    private readonly now: () => number = () => performance.now(),
  ) {}

  private get tty(): boolean {
    return this.stream.isTTY === true;
  }

  start(label: string): PhaseProgress {
    this.close();
    const bar: LiveBar = { label, done: 0, total: 0, status: '', started: this.now(), firstDone: null, firstAt: 0 };
    this.live = bar;
    return {
      update: (done, total, status) => {
        if (this.live !== bar) return; // a later phase took over
        if (bar.firstDone === null) {
          bar.firstDone = done;
          bar.firstAt = this.now();
        }
        bar.done = done;
        bar.total = total;
        if (status !== undefined) bar.status = status;
        this.draw();
      },
      end: (summary, result) => {
        if (this.live === bar) {
          if (bar.total > 0 && bar.done !== bar.total) {
            bar.done = bar.total;
            this.draw();
          }
          this.close();
        }
        const seconds = (this.now() - bar.started) / 1000;
        this.stream.write(`${label}: ${summary} in ${formatSeconds(seconds)}${result ? `, ${result}` : ''}\n`);
      },
    };
  }

  log(line: string): void {
    if (this.drawn) this.stream.write(CLEAR_LINE);
    this.stream.write(`${line}\n`);
    this.drawn = false;
    if (this.live !== null && this.live.total > 0) this.draw();
  }

  /** Leaves the live bar's line as it is (an error ended its phase) and forgets it. */
  close(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
    this.live = null;
  }

  /** The bar's line: label [####----] done/total pct% ETA | status, cut to the terminal's width. */
  private render(b: LiveBar): string {
    const frac = b.total > 0 ? Math.min(1, b.done / b.total) : 0;
    const filled = Math.round(frac * BAR_WIDTH);
    const rate = b.firstDone === null ? 0 : (b.done - b.firstDone) / Math.max(1e-9, (this.now() - b.firstAt) / 1000);
    const eta = b.done >= b.total ? 0 : rate > 0 ? (b.total - b.done) / rate : Infinity;
    const count = b.total > 0 ? ` ${b.done}/${b.total} ${Math.floor(frac * 100)}% ETA ${formatEta(eta)}` : ''; // 0: not known yet
    const line = `${b.label} [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]${count}${b.status === '' ? '' : ` | ${b.status}`}`;
    const width = this.stream.columns ?? 0;
    return width > 1 && line.length > width - 1 ? line.slice(0, width - 1) : line;
  }

  private draw(): void {
    if (!this.tty || this.live === null) return;
    this.stream.write(`${CLEAR_LINE}${this.render(this.live)}`);
    this.drawn = true;
  }
}
