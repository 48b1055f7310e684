/**
 * A task run now and then every `intervalMs`, never two at once: a call while one runs joins it.
 * `stop()` ends the timer and waits for the run under way. The fleet's gauges and its alert
 * checks run so.
 */
export interface Periodic {
  /** Runs the task now, or joins the run under way. */
  run(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

/** `task` must not reject: it reports its own failures. */
export function periodic(task: () => Promise<void>, intervalMs: number): Periodic {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= task().finally(() => {
      running = undefined;
    });
    return running;
  };
  return {
    run,
    start() {
      if (timer) return;
      void run();
      timer = setInterval(() => void run(), intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}
