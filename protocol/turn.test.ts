/**
 * turn.ts as a browser runs it (no setImmediate): callbacks queued in one task run together,
 * in order, once that task's microtasks have run, and before the next task; onNextTask runs in
 * a task of its own.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { onNextTask, onNextTurn } from './turn.ts';

describe('turn.ts without setImmediate (a browser)', () => {
  beforeEach(() => {
    vi.stubGlobal('setImmediate', undefined);
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('runs what one task queued together, after its microtasks and before the next task', async () => {
    const log: string[] = [];
    const nextTask = new Promise<void>((resolve) => setTimeout(() => (log.push('next task'), resolve()), 0));
    onNextTurn(() => log.push('a'));
    // Queued a few awaits later, as a response's body and end are: still in the same run.
    void (async () => {
      for (let i = 0; i < 4; i++) await null;
      onNextTurn(() => log.push('b'));
    })();
    onNextTurn(() => {
      throw new Error('one failing callback');
    });
    onNextTurn(() => log.push('c'));
    const uncaught = new Promise<unknown>((resolve) => process.once('uncaughtException', resolve));
    await nextTask;
    expect(log).toEqual(['a', 'c', 'b', 'next task']);
    expect(String(await uncaught)).toContain('one failing callback');
  });

  it('runs onNextTask in a later task, not in the current one', async () => {
    const log: string[] = [];
    onNextTask(() => log.push('task 1'));
    onNextTask(() => log.push('task 2'));
    onNextTurn(() => log.push('turn'));
    await null;
    expect(log).toEqual([]);
    // A marker queued last: tasks run in order, so once it has run the two before it have too.
    await new Promise<void>((resolve) => onNextTask(resolve));
    expect(log).toEqual(['turn', 'task 1', 'task 2']);
  });
});
