/** Things to undo on the way out, whichever way that is (end, error, Ctrl-C). */
const cleanups = new Set<() => Promise<unknown> | unknown>();

/** Registers `fn`; returns a function that unregisters it (call it once `fn` ran normally). */
export function onCleanup(fn: () => Promise<unknown> | unknown): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Runs every registered cleanup once, newest first, each bounded by `timeoutMs`. */
export async function runCleanups(timeoutMs = 15_000): Promise<void> {
  const fns = [...cleanups].reverse();
  cleanups.clear();
  for (const fn of fns) {
    await Promise.race([Promise.resolve().then(fn).catch(() => undefined), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}
