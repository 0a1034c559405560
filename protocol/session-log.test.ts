import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrames, encodeFrame, helloFrame } from './codec.ts';
import { LogBudget, utf8Length } from './console-log.ts';
import { FrameType, PROTOCOL_VERSION, type LogFrame } from './frames.ts';
import { createMemoryChannelPair } from './memory-channel.ts';
import { Session } from './session.ts';

const open: Session[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

describe('LOG frames and version negotiation', () => {
  it('delivers a host\'s log line to the ingress at version 2', async () => {
    const [a, b] = createMemoryChannelPair();
    const ingress = new Session(a, { role: 'client' });
    const host = new Session(b, { role: 'server' });
    open.push(ingress, host);
    await Promise.all([ingress.ready, host.ready]);
    expect(ingress.version).toBe(PROTOCOL_VERSION);
    const got = new Promise<LogFrame>((resolve) => (ingress.onlog = resolve));
    expect(host.sendLog('0af7651916cd43dd8448eb211c80319c', 'warn', 'careful')).toBe(true);
    expect(await got).toMatchObject({ requestId: '0af7651916cd43dd8448eb211c80319c', level: 'warn', text: 'careful', cutLines: 0 });
  });

  it('runs at version 1 with a version-1 peer and sends it no LOG frames', async () => {
    const [a, b] = createMemoryChannelPair();
    const host = new Session(a, { role: 'server' });
    open.push(host);
    const received: number[] = [];
    b.onmessage = (data) => {
      for (const f of decodeFrames(data)) received.push(f.type);
    };
    // A version-1 ingress: its HELLO says 1.
    b.send(encodeFrame({ ...helloFrame(1024, 'old-ingress'), version: 1 } as ReturnType<typeof helloFrame>));
    await host.ready;
    expect(host.version).toBe(1);
    expect(host.sendLog('id', 'log', 'not for you')).toBe(false);
    // The host's own HELLO went out, nothing else.
    await new Promise((r) => setTimeout(r, 0));
    expect(received.filter((t) => t === FrameType.LOG)).toEqual([]);
  });

  it('ignores a LOG frame from a peer that said version 1', async () => {
    const [a, b] = createMemoryChannelPair();
    const ingress = new Session(a, { role: 'client' });
    open.push(ingress);
    b.onmessage = () => {};
    let logs = 0;
    ingress.onlog = () => logs++;
    b.send(encodeFrame({ ...helloFrame(1024, 'old-host'), version: 1 } as ReturnType<typeof helloFrame>));
    await ingress.ready;
    b.send(encodeFrame({ type: FrameType.LOG, stream: 0, requestId: 'x', level: 'log', text: 'sneaky', cutLines: 0, cutBytes: 0 }));
    await new Promise((r) => setTimeout(r, 10));
    expect(logs).toBe(0);
    expect(ingress.stats.unknownStreamFrames).toBe(1);
    expect(ingress.isClosed).toBe(false);
  });
});

describe('LogBudget', () => {
  it('keeps lines up to the per-request line cap and counts the rest', () => {
    const budget = new LogBudget({ linesPerRequest: 2 });
    expect(budget.take('a')).toBe('a');
    expect(budget.take('bb')).toBe('bb');
    expect(budget.take('ccc')).toBeNull();
    expect(budget).toMatchObject({ lines: 2, bytes: 3, cutLines: 1, cutBytes: 3 });
  });

  it('cuts whole lines past the byte cap, and shortens one line past the line length', () => {
    const budget = new LogBudget({ bytesPerRequest: 10, lineLength: 6 });
    expect(budget.take('0123456789')).toBe('01234…');
    expect(budget.take('abcd')).toBeNull(); // 8 + 4 > 10
    expect(budget.take('ab')).toBe('ab');
    expect(budget.cutLines).toBe(1);
  });

  it('counts UTF-8 bytes, surrogate pairs as four', () => {
    expect(utf8Length('aé€😀')).toBe(1 + 2 + 3 + 4);
  });
});
