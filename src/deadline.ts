/**
 * A deadline as an AbortSignal that its own timer holds, optionally also ended by `stop`. Node 20
 * may garbage-collect the AbortSignal.timeout() inside AbortSignal.any() before it fires (a known
 * node bug, fixed in later lines), and the work it was meant to end then runs on: a responder
 * that keeps trickling bytes held an ACME validation for good. Here the timer closes over the
 * controller, so the deadline fires whatever the collector does. `done()` clears the timer and the
 * listener on `stop`; call it when the work ends.
 */
export interface Deadline {
  signal: AbortSignal;
  done(): void;
}

/** An error like AbortSignal.timeout()'s, so that callers can tell a deadline from a stop. */
function timeoutError(ms: number): Error {
  return new DOMException(`the operation took longer than ${ms} ms`, 'TimeoutError');
}

export function deadline(ms: number, stop?: AbortSignal): Deadline {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(timeoutError(ms)), ms);
  const onStop = () => controller.abort(stop!.reason);
  if (stop?.aborted) onStop();
  else stop?.addEventListener('abort', onStop, { once: true });
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer);
      stop?.removeEventListener('abort', onStop);
    },
  };
}
