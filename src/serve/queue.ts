/** One job at a time, in the order they were queued: the server decodes one request while the others wait. */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  /** Runs `job` after every job queued before it has settled; its result or failure is the caller's. */
  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Settles once every job queued so far has. */
  idle(): Promise<void> {
    return this.tail;
  }
}
