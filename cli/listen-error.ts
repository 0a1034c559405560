/**
 * A part that cannot listen says which part, on which address, why, and which flag moves it:
 * "ingress could not listen on 127.0.0.1:8080: address in use (EADDRINUSE); pass --port".
 */

const WHY: Record<string, string> = {
  EADDRINUSE: 'address in use (EADDRINUSE): another program, or another dcdn, listens there',
  EACCES: 'permission denied (EACCES): ports below 1024 need privileges',
  EADDRNOTAVAIL: 'address not available (EADDRNOTAVAIL): it is not an address of this machine',
};

/** An error of Node's `listen()`: a system error with the address it tried. */
interface ListenFailure extends Error {
  code?: string;
  syscall?: string;
  address?: string;
  port?: number;
}

/**
 * Runs `start`; a failure to listen becomes an error naming `part`, the address and `flag`
 * (and `--host` when the address is the problem). Other errors pass through unchanged.
 *
 * @param metricsListen The part's separate metrics address (`--metrics-listen`), when it has
 *   one: a failure on that port names `PART metrics` and `--metrics-listen` instead.
 */
export async function listening<T>(part: string, flag: string, start: () => Promise<T>, metricsListen?: { host: string; port: number }): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const e = err as ListenFailure;
    if (e.syscall !== 'listen' || e.code === undefined) throw err;
    // The part's own port listens first: a failure on the metrics port (when not 0) is the metrics'.
    const metrics = metricsListen !== undefined && metricsListen.port !== 0 && e.port === metricsListen.port;
    if (metrics) part = `${part} metrics`;
    const host = e.address === undefined ? undefined : e.address.includes(':') ? `[${e.address}]` : e.address;
    const where = host === undefined ? `port ${e.port}` : e.port === undefined ? host : `${host}:${e.port}`;
    const fix = metrics
      ? `pass --metrics-listen with ${e.code === 'EADDRNOTAVAIL' ? 'an address of this machine' : 'a free port'}`
      : e.code === 'EADDRNOTAVAIL'
        ? 'pass --host with an address of this machine'
        : `pass ${flag} with a free port (0: any free port)`;
    // No `code` of its own: the system code is in the text, and the CLI prints codes as a prefix.
    throw Object.assign(new Error(`${part} could not listen on ${where}: ${WHY[e.code] ?? e.message}; ${fix}`), { part, cause: err });
  }
}
