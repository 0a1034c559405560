import { describe, expect, it } from 'vitest';
import { parseFlags, UsageError } from './args.ts';
import { iceConfigFromFlags, iceFlags } from './ice-flags.ts';

const read = (argv: string[], env: NodeJS.ProcessEnv = {}) => iceConfigFromFlags(parseFlags(argv, iceFlags), env);

describe('the --stun/--turn flags', () => {
  it('collects repeated URLs, the secret and the ttl (default 3600)', () => {
    expect(read(['--stun', 'stun:a.example', '--turn', 'turn:t.example?transport=udp', '--turn', 'turns:t.example', '--turn-secret', 's3cret'])).toEqual({
      stun: ['stun:a.example'],
      turn: ['turn:t.example?transport=udp', 'turns:t.example'],
      turnSecret: 's3cret',
      turnTtlSeconds: 3600,
    });
  });

  it('reads the secret from DCDN_TURN_SECRET, and ignores that variable without --turn', () => {
    expect(read(['--turn', 'turn:t.example', '--turn-ttl', '120'], { DCDN_TURN_SECRET: 'env' })).toMatchObject({ turnSecret: 'env', turnTtlSeconds: 120 });
    expect(read([], { DCDN_TURN_SECRET: 'env' })).toBeUndefined();
  });

  it('turns a bad configuration into a usage error naming the flag', () => {
    expect(() => read(['--turn', 'turn:t.example'])).toThrow(UsageError);
    expect(() => read(['--turn', 'turn:t.example'])).toThrow(/--turn needs --turn-secret/);
    expect(() => read(['--turn-secret', 'x'])).toThrow(/without any --turn/);
    expect(() => read(['--turn', 'turn:t.example', '--turn-secret', 'x', '--turn-ttl', 'soon'])).toThrow(/--turn-ttl must be a whole number/);
  });
});
