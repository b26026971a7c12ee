// Elapsed time as the lab reports it: seconds, from the monotonic clock.

/** A timer started now: each call returns the seconds since it was made. */
export function timer(): () => number {
  const t0 = performance.now();
  return () => (performance.now() - t0) / 1000;
}

/** A lap timer: each call returns the seconds since the previous call (or since it was made). */
export function stopwatch(): () => number {
  let last = performance.now();
  return () => {
    const now = performance.now();
    const elapsed = (now - last) / 1000;
    last = now;
    return elapsed;
  };
}
