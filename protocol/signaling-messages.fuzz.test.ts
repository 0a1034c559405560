/**
 * Property tests of the signaling parsers (issue 15.18): what any peer can send through
 * signaling. Each parser takes anything (text, JSON of any shape, deep nesting, prototype keys)
 * and answers with a checked message or a refusal, never an exception, and what it accepts has
 * the shape its type promises.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseLinkSignal } from './link.ts';
import { errorCodeOf } from './errors.ts';
import { parseAppConfig } from './app-config.ts';
import { MAX_DEPTH, parseClientMessage, parseServerMessage } from './signaling-messages.ts';

const KEYS = ['type', 'info', 'to', 'data', 'id', 'ok', 'error', 'ms', 'apps', 'name', 'version', 'state', 'role', 'peers', 'iceServers', 'urls', 'peer', 'from', 'reason', 'kind', 'conn', 'sdp', 'candidate', 'url', 'ticket', 'kv', 'volunteers', 'require', 'vars', '__proto__', 'constructor', 'prototype'];
const TYPES = ['hello', 'signal', 'checked', 'status', 'welcome', 'ice', 'join', 'update', 'leave', 'apps', 'check', 'error', 'offer', 'answer', 'candidate', 'websocket', 'close', 'serving'];

/** JSON values biased towards the parsers' own keys and type names, so they get past the first checks. */
const json = fc.letrec((tie) => ({
  leaf: fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(...TYPES), fc.string({ maxLength: 70 })),
  object: fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 6 })), tie('node'), { maxKeys: 6 }),
  node: fc.oneof({ depthSize: 'small' }, tie('leaf'), tie('object'), fc.array(tie('node'), { maxLength: 4 })),
})).node;
/** Objects shaped like messages: a known type plus keys of the right names. */
const messageLike = fc.tuple(fc.constantFrom(...TYPES), fc.dictionary(fc.constantFrom(...KEYS), json, { maxKeys: 6 })).map(([type, rest]) => ({ ...rest, type, kind: type }));
/** Text: JSON of the above (with `__proto__` as an own key, as JSON.parse makes it), nesting past the limit, or anything. */
const text = fc.oneof(
  json.map((v) => JSON.stringify(v)),
  messageLike.map((v) => JSON.stringify(v)),
  fc.integer({ min: 1, max: 5000 }).map((n) => `{"type":"signal","to":"a","data":${'['.repeat(n)}${']'.repeat(n)}}`),
  fc.constantFrom('{"type":"hello","info":{"__proto__":{"admin":true}}}', '{"type":"signal","to":"a","data":{"constructor":{"prototype":{}}}}'),
  fc.string({ maxLength: 100 }),
);

function depth(v: unknown): number {
  return typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0;
}

describe('signaling parsers under arbitrary input', () => {
  it('parseClientMessage never throws, and accepts only known types without prototype keys or deep nesting', () => {
    fc.assert(
      fc.property(text, (t) => {
        const r = parseClientMessage(t);
        if (!r.ok) {
          expect(typeof r.reason).toBe('string');
          return;
        }
        expect(['hello', 'signal', 'checked', 'status']).toContain(r.message.type);
        const seen = JSON.stringify(r.message);
        expect(seen.includes('"__proto__"') || seen.includes('"constructor"') || seen.includes('"prototype"')).toBe(false);
        expect(depth(r.message)).toBeLessThanOrEqual(MAX_DEPTH + 1);
      }),
      { numRuns: 3000 },
    );
  });

  it('parseServerMessage never throws and returns null or a known type', () => {
    fc.assert(
      fc.property(text, (t) => {
        const m = parseServerMessage(t);
        if (m !== null) expect(['welcome', 'join', 'update', 'leave', 'signal', 'error', 'apps', 'ice', 'check']).toContain(m.type);
      }),
      { numRuns: 3000 },
    );
  });

  it('parseLinkSignal never throws and returns null or a signal with a bounded conn', () => {
    fc.assert(
      fc.property(fc.oneof(json, messageLike), (v) => {
        const s = parseLinkSignal(v);
        if (s === null) return;
        expect(['offer', 'answer', 'candidate', 'websocket', 'close']).toContain(s.kind);
        expect(typeof s.conn === 'string' && s.conn.length > 0 && s.conn.length <= 64).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('parseAppConfig returns a config or throws APP_BAD_CONFIG, nothing else', () => {
    const configLike = fc.dictionary(fc.constantFrom('kv', 'volunteers', 'require', 'vars', 'x'), fc.oneof(json, fc.array(fc.constantFrom('KV', 'webgpu', 'A b', ''), { maxLength: 3 }), fc.dictionary(fc.constantFrom('A', 'b c', 'KV'), json, { maxKeys: 2 })), { maxKeys: 4 });
    fc.assert(
      fc.property(fc.oneof(json, configLike), (v) => {
        try {
          const c = parseAppConfig(v);
          expect(Array.isArray(c.kv) && typeof c.volunteers === 'boolean' && Array.isArray(c.require) && typeof c.vars === 'object').toBe(true);
        } catch (err) {
          expect(errorCodeOf(err)).toBe('APP_BAD_CONFIG');
        }
      }),
      { numRuns: 3000 },
    );
  });
});

/**
 * Inputs the properties above found, kept as literals. Both made parseAppConfig throw a
 * TypeError ("Cannot convert object to primitive value") from its error message's String(name)
 * instead of APP_BAD_CONFIG: a deploy request with such a config got no coded answer.
 */
describe('corpus: inputs the signaling properties found', () => {
  it.each([
    ['a KV binding name that is an object without a prototype', { kv: [Object.create(null) as unknown] }],
    ['a KV binding name from JSON with its own toString key', JSON.parse('{"kv":[{"toString":1}]}') as unknown],
    ['a capability from JSON with its own toString key', JSON.parse('{"require":[{"toString":1,"valueOf":2}]}') as unknown],
  ])('%s: APP_BAD_CONFIG', (_name, config) => {
    expect(() => parseAppConfig(config)).toThrow(expect.objectContaining({ code: 'APP_BAD_CONFIG' }));
  });
});
