/**
 * The scenarios' serving hosts, proved against today's single-node CLI (no cluster flags): they
 * are attached over the WebSocket transport, report a deploy as served, answer through the
 * ingress, and reach the app's KV through their session (Redis over TCP). So when a scenario
 * fails, it is the cluster, not the hosts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startRedisTcp, type RedisTcpServer } from '../../tools/redis.ts';
import { mintToken } from '../../signaling/index.ts';
import { ingressHealth, signalHealth, waitFor } from './cluster-api.ts';
import { EchoHosts } from './echo-hosts.ts';
import { httpCall } from './http-call.ts';
import { Procs } from './procs.ts';
import { freePort, SECRET } from './topology.ts';
import { runDcdn } from '../cli.ts';

const procs = new Procs();
const hosts = new EchoHosts(SECRET);
let redis: RedisTcpServer | null = null;
afterAll(async () => {
  hosts.closeAll();
  await procs.killAll();
  await redis?.stop();
});

it('echo hosts serve through a real ingress, report deploys, and reach KV', async () => {
  redis = await startRedisTcp({ port: await freePort() });
  const [sp, ip] = [await freePort(), await freePort()];
  const signal = procs.dcdn('signal', ['signal', '--port', String(sp), '--secret', SECRET]);
  const operator = mintToken(SECRET, { role: 'operator', ttlSeconds: 600 });
  await signal.waitReady(async () => (await signalHealth(`http://127.0.0.1:${sp}`, operator)) !== null, 'ready');
  const ingress = procs.dcdn('ingress', ['ingress', '--signal', `http://127.0.0.1:${sp}`, '--port', String(ip), '--secret', SECRET, '--transport', 'websocket', '--name', 'i1', '--kv-store', redis.url]);
  await ingress.waitReady(async () => (await ingressHealth(`http://127.0.0.1:${ip}`))?.signaling === true, 'connected');
  const h = hosts.start({ name: 'e1', signalUrl: `ws://127.0.0.1:${sp}/v1/signal` });
  await waitFor(async () => ((await ingressHealth(`http://127.0.0.1:${ip}`))?.hosts.some((x) => x.name === 'e1') ? true : null), 15_000, () => 'e1 not attached');
  const home = procs.home('cli');
  const file = join(home, 'app.ts');
  writeFileSync(file, `export default { fetch() { return new Response('x'); } };\n`);
  const deployed = await runDcdn({ PATH: process.env.PATH, HOME: home, DCDN_HOME: home }, ['deploy', file, '--name', 'echo', '--kv', 'CACHE', '--signal', `http://127.0.0.1:${sp}`, '--token', operator]);
  expect(deployed.code, deployed.stderr).toBe(0);
  expect(h.versions.get('echo')).toBe(1);
  const r = await httpCall(`http://127.0.0.1:${ip}/@echo/hello`);
  expect({ status: r.status, host: r.headers['dcdn-host'] }).toEqual({ status: 200, host: 'e1' });
  expect(JSON.parse(r.body)).toMatchObject({ host: 'e1', app: 'echo', path: '/hello', versions: { echo: 1 } });
  const kv = await httpCall(`http://127.0.0.1:${ip}/@echo/kv/CACHE/missing`);
  expect(JSON.parse(kv.body)).toMatchObject({ kv: 404 });
  // Redis frozen: the KV read fails with its code, the plain request still succeeds.
  redis.pause();
  try {
    const frozen = await httpCall(`http://127.0.0.1:${ip}/@echo/kv/CACHE/missing`, { timeoutMs: 20_000 });
    expect({ status: frozen.status, error: frozen.headers['x-kv-error'], ms: frozen.ms < 5500 }).toEqual({ status: 503, error: 'KV_STORE_UNAVAILABLE', ms: true });
    expect((await httpCall(`http://127.0.0.1:${ip}/@echo/ok`)).status).toBe(200);
  } finally {
    redis.resume();
  }
}, 90_000);
