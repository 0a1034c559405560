/**
 * Runs callbacks once per event-loop turn, after the I/O of the current one.
 *
 * The session flushes its queue here instead of at the end of each microtask: request heads
 * that arrive on different client sockets in the same turn then share one channel message, as
 * do a response's head, body and end. On werift each message costs a UDP packet, a DTLS record
 * and an SCTP round of CPU; batching per turn took dcdn from 1,334 to 6,768 req/s at 50
 * connections in a side-by-side run (docs/performance.md). setImmediate where the runtime has
 * it (Node), else a MessageChannel task (browsers); neither is clamped like setTimeout(0).
 */
type Task = () => void;

const pending: Task[] = [];
/** Both ends stay referenced: a browser may collect an unreferenced port and its handler. */
let channel: MessageChannel | null = null;

function runPending(): void {
  const tasks = pending.splice(0);
  for (const task of tasks) {
    try {
      task();
    } catch (err) {
      // One failing task must not strand the others; report it as uncaught.
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}

export function onNextTurn(task: Task): void {
  pending.push(task);
  if (pending.length > 1) return;
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown; MessageChannel?: typeof MessageChannel };
  if (typeof g.setImmediate === 'function') {
    g.setImmediate(runPending);
    return;
  }
  if (!channel) {
    channel = new g.MessageChannel!();
    channel.port1.onmessage = runPending;
  }
  channel.port2.postMessage(null);
}
