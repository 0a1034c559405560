/**
 * The cron part of the signaling contract (signaling-messages.ts) and of the app config
 * (app-config.ts): `cron` to an ingress, `cron-result` from it, and the `crons` field.
 */
import { describe, expect, it } from 'vitest';
import { parseAppConfig } from './app-config.ts';
import { MAX_CRON_ERROR_LENGTH, parseClientMessage, parseServerMessage } from './signaling-messages.ts';

describe('cron signaling messages', () => {
  it('accepts an ingress\'s cron-result, cutting a long error, and refuses malformed ones', () => {
    const ok = { type: 'cron-result', id: 'r1', ok: false, code: 'HOST_HANDLER_ERROR', error: 'e'.repeat(10_000), host: 'tab-1', ms: 12 };
    expect(parseClientMessage(JSON.stringify(ok))).toEqual({ ok: true, message: { ...ok, error: 'e'.repeat(MAX_CRON_ERROR_LENGTH) } });
    for (const bad of [
      { ...ok, ok: 'no' },
      { ...ok, ms: -1 },
      { ...ok, ms: Infinity },
      { ...ok, code: 'C'.repeat(200) },
      { ...ok, host: 7 },
      { ...ok, extra: 1 },
      { ...ok, id: '' },
    ]) {
      expect(parseClientMessage(JSON.stringify(bad)).ok, JSON.stringify(bad).slice(0, 80)).toBe(false);
    }
  });

  it('parses a cron request for an ingress and drops malformed ones', () => {
    const m = { type: 'cron', id: 'c1', app: 'jobs', cron: '*/5 * * * *', scheduledTime: 1_767_225_900_000 };
    expect(parseServerMessage(JSON.stringify(m))).toEqual(m);
    expect(parseServerMessage(JSON.stringify({ ...m, app: 'Not An App' }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ ...m, scheduledTime: 1.5 }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ ...m, cron: 5 }))).toBeNull();
  });
});

describe('AppConfig crons', () => {
  it('is absent unless given, keeps order, folds spaces and drops repeats', () => {
    expect(parseAppConfig({})).not.toHaveProperty('crons');
    expect(parseAppConfig({ crons: [] })).not.toHaveProperty('crons');
    expect(parseAppConfig({ crons: ['0  3 * * MON', '*/5 * * * *', '0 3 * * MON'] }).crons).toEqual(['0 3 * * MON', '*/5 * * * *']);
  });

  it('refuses what is not a short list of strings with APP_BAD_CONFIG', () => {
    for (const crons of ['* * * * *', [1], [''], ['x'.repeat(101)], Array.from({ length: 11 }, (_, i) => `${i} * * * *`)]) {
      expect(() => parseAppConfig({ crons }), JSON.stringify(crons).slice(0, 40)).toThrow(expect.objectContaining({ code: 'APP_BAD_CONFIG' }));
    }
  });
});
