/**
 * Echo hosts (echo-hosts.ts) in a process of their own, to put hosts inside a network namespace
 * (the region-partition scenario). Usage:
 * `ip netns exec NS node --import tsx host-process.ts '{"secret":"…","hosts":[{"name":"h1","signalUrl":"ws://…"}]}'`.
 * Prints `started N`; takes `close NAME` / `destroy NAME` lines on stdin and answers `ok LINE`;
 * `status` prints `status {"NAME":{"sessions":N,"versions":{…}}}`.
 */
import { createInterface } from 'node:readline';
import { EchoHosts, type EchoHostOptions } from './echo-hosts.ts';

const config = JSON.parse(process.argv[2] ?? '{}') as { secret: string; hosts: EchoHostOptions[] };
const hosts = new EchoHosts(config.secret);
for (const h of config.hosts) hosts.start(h);
console.log(`started ${config.hosts.length}`);
createInterface({ input: process.stdin })
  .on('line', (line) => {
    const [cmd, name] = line.trim().split(/\s+/);
    if (cmd === 'close' && name) hosts.close(name);
    else if (cmd === 'destroy' && name) hosts.destroy(name);
    else if (cmd === 'status') {
      const status = Object.fromEntries([...hosts.hosts.values()].map((h) => [h.name, { sessions: h.openSessions(), versions: Object.fromEntries(h.versions) }]));
      console.log(`status ${JSON.stringify(status)}`);
      return;
    }
    console.log(`ok ${line.trim()}`);
  })
  .on('close', () => {
    hosts.closeAll();
    setTimeout(() => process.exit(0), 200);
  });
