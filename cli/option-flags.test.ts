import { describe, expect, it } from 'vitest';
import { DcdnError } from '../protocol/index.ts';
import { UsageError } from './args.ts';
import { asFlagError, withFlags } from './option-flags.ts';

describe('option names in library errors', () => {
  it('become the flags a user types', () => {
    expect(withFlags('`turn` needs `turnSecret`: coturn credentials are minted from it')).toBe('--turn needs --turn-secret: coturn credentials are minted from it');
    expect(withFlags('or pass its path as `browserPath`, or set DCDN_BROWSER')).toBe('or pass its path as --browser, or set DCDN_BROWSER');
    expect(withFlags("`rtcBackend` 'node-datachannel' needs it; run `npm install node-datachannel@0.33.4`")).toBe("--rtc 'node-datachannel' needs it; run `npm install node-datachannel@0.33.4`");
  });

  it('turn an option error into a usage error, and leave other errors alone', () => {
    const usage = asFlagError(new DcdnError('SIG_BAD_OPTION', '`turnSecret` was given without any `turn` URL'));
    expect(usage).toBeInstanceOf(UsageError);
    expect((usage as Error).message).toBe('--turn-secret was given without any --turn URL');
    const other = new DcdnError('KV_STORE_UNAVAILABLE', 'redis is down');
    expect(asFlagError(other)).toBe(other);
  });
});
