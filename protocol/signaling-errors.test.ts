import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SIGNALING_ERRORS, SignalingError, isSignalingErrorCode } from './signaling-errors.ts';

const docs = readFileSync(new URL('../docs/signaling.md', import.meta.url), 'utf8');

describe('signaling errors', () => {
  it.each(Object.keys(SIGNALING_ERRORS))('documents %s in docs/signaling.md', (code) => {
    expect(docs).toContain(`\`${code}\``);
  });

  it('documents no code that does not exist', () => {
    const mentioned = new Set(docs.match(/\bSIG_[A-Z_]+\b/g) ?? []);
    expect([...mentioned].filter((code) => !isSignalingErrorCode(code))).toEqual([]);
  });

  it('documents each code with its HTTP status', () => {
    for (const [code, { status }] of Object.entries(SIGNALING_ERRORS)) {
      expect(docs).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${status}\\s*\\|`));
    }
  });

  it('gives every error its code, status and default message', () => {
    const err = new SignalingError('SIG_TOKEN_SCOPE');
    expect([err.code, err.status, err.message]).toEqual(['SIG_TOKEN_SCOPE', 403, SIGNALING_ERRORS.SIG_TOKEN_SCOPE.description]);
  });

  it('does not mistake prototype keys for codes', () => {
    expect(isSignalingErrorCode('toString')).toBe(false);
    expect(isSignalingErrorCode('__proto__')).toBe(false);
  });
});
