/**
 * How signaling hands a scheduled run to its ingresses (cron-dispatch.ts), with stub ingresses
 * that answer as the real ones would (the end-to-end test drives real ones): the next ingress
 * is asked only when one had no host; a silent or departed ingress ends the run unretried.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CronMessage } from '../protocol/index.ts';
import { CronDispatch, type CronIngress } from './cron-dispatch.ts';

afterEach(() => {
  vi.useRealTimers();
});

type Answer = (m: CronMessage) => { ok: boolean; code?: string; error?: string; host?: string } | 'silent' | 'leave';

function setup(answers: Record<string, Answer>) {
  const asked: string[] = [];
  const dispatch: CronDispatch = new CronDispatch({ local: () => ingresses });
  const ingresses: CronIngress[] = Object.entries(answers).map(([name, answer]) => ({
    id: `id-${name}`,
    name,
    send(m) {
      asked.push(name);
      queueMicrotask(() => {
        const a = answer(m);
        if (a === 'silent') return;
        if (a === 'leave') return dispatch.ingressGone(`id-${name}`);
        dispatch.onResult(`id-${name}`, { type: 'cron-result', id: m.id, ok: a.ok, code: a.code ?? '', error: a.error ?? '', host: a.host ?? '', ms: 4 });
      });
    },
  }));
  return { dispatch, asked };
}

describe('CronDispatch', () => {
  it('answers CRON_NO_INGRESS when no ingress is connected', async () => {
    const { dispatch } = setup({});
    expect(dispatch.hasIngress).toBe(false);
    expect(await dispatch.run('jobs', '* * * * *', 0)).toMatchObject({ ok: false, code: 'CRON_NO_INGRESS' });
  });

  it('asks the next ingress when one has no host for the app, and reports the host that ran it', async () => {
    const { dispatch, asked } = setup({ a: () => ({ ok: false, code: 'INGRESS_NO_HOST', error: 'none here' }), b: () => ({ ok: false, code: 'INGRESS_NO_HOST' }) });
    const none = await dispatch.run('jobs', '* * * * *', 0);
    expect(asked.sort()).toEqual(['a', 'b']);
    expect(none).toMatchObject({ ok: false, code: 'INGRESS_NO_HOST' });
    const second = setup({ a: () => ({ ok: false, code: 'INGRESS_NO_HOST' }), b: () => ({ ok: false, code: 'INGRESS_NO_HOST' }), c: () => ({ ok: true, host: 'tab-3' }) });
    await expect(second.dispatch.run('jobs', '* * * * *', 0)).resolves.toMatchObject({ ok: true, host: 'tab-3', ingress: 'c' });
  });

  it('never hands on a run that failed in the handler, or whose ingress left or fell silent', async () => {
    const failed = setup({ a: () => ({ ok: false, code: 'HOST_HANDLER_ERROR', error: 'Error: boom', host: 'tab-1' }), b: () => ({ ok: false, code: 'HOST_HANDLER_ERROR', error: 'Error: boom', host: 'tab-2' }) });
    expect(await failed.dispatch.run('jobs', '* * * * *', 0)).toMatchObject({ ok: false, code: 'HOST_HANDLER_ERROR', error: 'Error: boom' });
    expect(failed.asked).toHaveLength(1);
    const left = setup({ a: () => 'leave', b: () => 'leave' });
    expect(await left.dispatch.run('jobs', '* * * * *', 0)).toMatchObject({ ok: false, code: 'CRON_NO_INGRESS', error: expect.stringContaining('unknown') });
    expect(left.asked).toHaveLength(1);
    vi.useFakeTimers();
    const silent = setup({ a: () => 'silent', b: () => 'silent' });
    const pending = silent.dispatch.run('jobs', '* * * * *', 0, 5000);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await pending).toMatchObject({ ok: false, code: 'CRON_TIMEOUT' });
    expect(silent.asked).toHaveLength(1);
  });

  it('ignores an answer from an ingress that was not asked', async () => {
    vi.useFakeTimers();
    let runId = '';
    const { dispatch } = setup({ a: (m) => ((runId = m.id), 'silent') });
    const pending = dispatch.run('jobs', '* * * * *', 0, 1000);
    await vi.advanceTimersByTimeAsync(0);
    expect(runId).not.toBe('');
    dispatch.onResult('id-intruder', { type: 'cron-result', id: runId, ok: true, code: '', error: '', host: 'x', ms: 1 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(await pending).toMatchObject({ code: 'CRON_TIMEOUT' });
  });

  it('runs through an ingress of another node over the bus when it has none of its own', async () => {
    type Bus = Parameters<NonNullable<ConstructorParameters<typeof CronDispatch>[0]['bus']>>[1];
    const nodes = new Map<string, CronDispatch>();
    const bus = (to: string) => async (node: string, m: Bus) => {
      expect(node).toBe(to);
      queueMicrotask(() => nodes.get(node)!.onBus(m));
    };
    const b1: CronIngress = {
      id: 'ing-b1',
      name: 'b1',
      send: (m) => queueMicrotask(() => nodes.get('B')!.onResult('ing-b1', { type: 'cron-result', id: m.id, ok: true, code: '', error: '', host: 'tab-b', ms: 7 })),
    };
    nodes.set('A', new CronDispatch({ local: () => [], remote: () => [{ id: 'ing-b1', name: 'b1', node: 'B' }], bus: bus('B'), nodeId: () => 'A' }));
    nodes.set('B', new CronDispatch({ local: () => [b1], remote: () => [], bus: bus('A'), nodeId: () => 'B' }));
    expect(nodes.get('A')!.hasIngress).toBe(false);
    expect(await nodes.get('A')!.run('jobs', '* * * * *', 60_000)).toEqual({ ok: true, code: '', error: '', host: 'tab-b', ingress: 'b1', ms: 7 });
    // A node that cannot be reached is skipped: the run is not lost on it.
    const unreachable = new CronDispatch({ local: () => [], remote: () => [{ id: 'ing-x', name: 'x', node: 'X' }], bus: async () => Promise.reject(new Error('bus down')), nodeId: () => 'A' });
    expect(await unreachable.run('jobs', '* * * * *', 0)).toMatchObject({ ok: false, code: 'CRON_NO_INGRESS', error: expect.stringContaining('could not be asked') });
  });
});
