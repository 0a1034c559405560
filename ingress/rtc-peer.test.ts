/**
 * werift's UDP sockets hold a whole SCTP receive window. With the kernel's default buffer
 * (212992 bytes) a loaded ingress dropped hundreds of a tab's datagrams per MiB; the tab's SCTP
 * then stalled for retransmission timeouts past the session heartbeat, and the first 1 MiB
 * download of `dcdn bench --smoke` ended in 502 INGRESS_HOST_LOST (docs/webrtc.md).
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { UDP_RECEIVE_BUFFER_BYTES } from './offerer.ts';
import { createOfferer, type WeriftOfferer } from './rtc-peer.ts';

/** What Linux grants at most (net.core.rmem_max), doubled as it reports buffers. */
function linuxCeiling(): number {
  return 2 * Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
}

const linux = process.platform === 'linux' ? describe : describe.skip;

linux('WeriftOfferer UDP receive buffers', () => {
  const open: WeriftOfferer[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((o) => o.close()));
  });

  it('asks the kernel for UDP_RECEIVE_BUFFER_BYTES on every socket werift binds', async () => {
    const offerer = createOfferer();
    open.push(offerer);
    await offerer.offer();
    const sizes = offerer.udpReceiveBuffers;
    expect(sizes.length).toBeGreaterThan(0);
    // Linux reports twice what it granted; the grant is capped at net.core.rmem_max.
    const expected = Math.min(2 * UDP_RECEIVE_BUFFER_BYTES, linuxCeiling());
    for (const size of sizes) expect(size).toBe(expected);
  });

  it('takes the size it is given', async () => {
    const offerer = createOfferer({ udpReceiveBufferBytes: 1024 * 1024 });
    open.push(offerer);
    await offerer.offer();
    const expected = Math.min(2 * 1024 * 1024, linuxCeiling());
    expect(offerer.udpReceiveBuffers).toEqual(offerer.udpReceiveBuffers.map(() => expected));
  });

  it('refuses a size that is not a positive integer', () => {
    expect(() => createOfferer({ udpReceiveBufferBytes: 0 })).toThrow(/udpReceiveBufferBytes/);
    expect(() => createOfferer({ udpReceiveBufferBytes: 1.5 })).toThrow(/udpReceiveBufferBytes/);
  });
});
