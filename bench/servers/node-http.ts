/**
 * The plain Node target: bench/bench-app.ts on `node:http` through the Web adapter, in its own
 * process. Prints `{"url", "pid"}` once listening; stops on SIGTERM or SIGINT.
 */
import { createServer } from 'node:http';
import app from '../bench-app.ts';
import { nodeListener } from './web-adapter.ts';

const server = createServer({ keepAliveTimeout: 5_000 }, nodeListener(app));
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}`, pid: process.pid })}\n`);
});
const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Started by the benchmark with `--exit-with-parent`: stdin closing means it went away.
if (process.argv.includes('--exit-with-parent')) process.stdin.on('end', stop).resume();
