/**
 * Bench-only preload (`node --import ./bench/udp-rcvbuf-preload.mjs ...`): when
 * DCDN_BENCH_UDP_RCVBUF is a positive number of bytes, every UDP socket the process creates
 * afterwards (werift's ICE sockets) gets `setRecvBufferSize(N)` once bound. Used by
 * bench/udp-rcvbuf-e2e.ts on an ingress child; the product never loads it.
 */
import dgram from 'node:dgram';
import { syncBuiltinESMExports } from 'node:module';

const size = Number(process.env.DCDN_BENCH_UDP_RCVBUF ?? 0);
if (size > 0) {
  const original = dgram.createSocket;
  dgram.createSocket = function createSocket(...args) {
    const socket = original.apply(dgram, args);
    socket.once('listening', () => socket.setRecvBufferSize(size));
    return socket;
  };
  // werift's ESM build does `import { createSocket } from "dgram"`: update that binding too.
  syncBuiltinESMExports();
}
