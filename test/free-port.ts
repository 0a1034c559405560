/**
 * A port nothing listens on right now on `host` (the kernel's pick, released at once), for a
 * test that must name a port before the program that takes it starts. Another process may take
 * it in between; tests that use it are fine with that small race.
 */
import { createServer, type AddressInfo } from 'node:net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
