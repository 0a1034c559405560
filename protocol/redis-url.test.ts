import { describe, expect, it } from 'vitest';
import { parseRedisUrl } from './redis-url.ts';

describe('parseRedisUrl', () => {
  it('reads host, port, database and an ACL user from redis:// and rediss://', () => {
    expect(parseRedisUrl('redis://10.0.0.2')).toEqual({ host: '10.0.0.2', port: 6379, db: 0 });
    expect(parseRedisUrl('rediss://dcdn:p%40ss@redis.internal:6380/2')).toEqual({
      host: 'redis.internal',
      port: 6380,
      db: 2,
      username: 'dcdn',
      password: 'p@ss',
      tls: { servername: 'redis.internal' },
    });
    expect(parseRedisUrl('redis://[::1]:7000')).toMatchObject({ host: '::1', port: 7000 });
  });

  it('reads a unix socket from redis+unix:// URLs and bare paths', () => {
    expect(parseRedisUrl('redis+unix:///run/redis/redis.sock?db=3')).toEqual({ path: '/run/redis/redis.sock', db: 3 });
    expect(parseRedisUrl('/tmp/r.sock')).toEqual({ path: '/tmp/r.sock', db: 0 });
    expect(parseRedisUrl('redis+unix:///run/r.sock?user=dcdn&password=p%26w')).toEqual({ path: '/run/r.sock', db: 0, username: 'dcdn', password: 'p&w' });
  });

  it('refuses what is not a Redis URL, naming it', () => {
    expect(() => parseRedisUrl('http://x')).toThrow(/not a Redis URL: "http:\/\/x"/);
    expect(() => parseRedisUrl('redis://x/abc')).toThrow(/database number/);
    expect(() => parseRedisUrl('nonsense')).toThrow(RangeError);
  });
});
