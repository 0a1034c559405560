/**
 * Runs callbacks once per event-loop turn, after the I/O of the current one.
 *
 * The session flushes its queue here instead of at the end of each microtask: request heads
 * that arrive on different client sockets in the same turn then share one channel message, as
 * do a response's head, body and end. On werift each message costs a UDP packet, a DTLS record
 * and an SCTP round of CPU; batching per turn took dcdn from 1,334 to 6,768 req/s at 50
 * connections in a side-by-side run (docs/performance.md).
 *
 * In Node, setImmediate: after the poll phase, so every socket read in it is covered. In a
 * browser each channel message (and each batch of answers from a sandbox) is a task of its own,
 * and what it produces is produced in that task's microtasks: the callbacks run at the end of
 * them, after a chain of microtasks deep enough for a response's head, body and end (a few
 * awaits apart) to have been queued. Measured in a host tab against posting a MessageChannel
 * task per flush, as this did before: the same batching at 50 connections, and one task and
 * one postMessage less per request (p50 at 1 connection 1.26 ms against 1.33 ms, the page's
 * main thread 357 µs of CPU a request against 391). Microtasks are never throttled in a
 * background tab, which timers are.
 */
type Task = () => void;

const pending: Task[] = [];
/**
 * Microtasks to wait in a browser before running the callbacks. Frames of one response are
 * queued about four microtasks apart (an `await` per write); this leaves room for more.
 */
const MICROTASK_HOPS = 16;

function runPending(): void {
  runAll(pending);
}

function runAll(queue: Task[]): void {
  const tasks = queue.splice(0);
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
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown };
  if (typeof g.setImmediate === 'function') {
    g.setImmediate(runPending);
    return;
  }
  let hops = 0;
  const hop = () => {
    if (++hops < MICROTASK_HOPS) queueMicrotask(hop);
    else runPending();
  };
  queueMicrotask(hop);
}

/** Tasks for {@link onNextTask}'s next message. */
const nextTask: Task[] = [];
/** Both ends stay referenced: a browser may collect an unreferenced port and its handler. */
let channel: MessageChannel | null = null;

/**
 * Runs `task` in a task of its own, after the current one: setImmediate in Node (the same as
 * {@link onNextTurn}), a MessageChannel message in a browser. A session sends its HELLO this
 * way, a task after its channel opened, as it did before browsers flushed in microtasks: an
 * ingress that attaches its handler a little after the channel opens must not miss it.
 */
export function onNextTask(task: Task): void {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown; MessageChannel?: typeof MessageChannel };
  if (typeof g.setImmediate === 'function') {
    g.setImmediate(task);
    return;
  }
  nextTask.push(task);
  if (nextTask.length > 1) return;
  if (!channel) {
    channel = new g.MessageChannel!();
    channel.port1.onmessage = () => runAll(nextTask);
  }
  channel.port2.postMessage(null);
}
