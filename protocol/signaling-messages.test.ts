import { describe, expect, it } from 'vitest';
import { MAX_DEPTH, MAX_ID_LENGTH, MAX_INFO_BYTES, parseClientMessage, parseServerMessage } from './signaling-messages.ts';

function reasonFor(text: string): string {
  const result = parseClientMessage(text);
  if (result.ok) throw new Error(`expected ${text.slice(0, 80)} to be rejected`);
  return result.reason;
}

describe('parseClientMessage', () => {
  it('accepts a hello with an info object', () => {
    expect(parseClientMessage('{"type":"hello","info":{"name":"tab","cores":4}}')).toEqual({
      ok: true,
      message: { type: 'hello', info: { name: 'tab', cores: 4 } },
    });
  });

  it('accepts a signal with any JSON data, including null', () => {
    expect(parseClientMessage('{"type":"signal","to":"abc","data":{"sdp":"v=0"}}')).toEqual({
      ok: true,
      message: { type: 'signal', to: 'abc', data: { sdp: 'v=0' } },
    });
    expect(parseClientMessage('{"type":"signal","to":"abc","data":null}').ok).toBe(true);
  });

  it.each([
    ['invalid JSON', '{"type":'],
    ['an empty frame', ''],
    ['a JSON string', '"hello"'],
    ['a JSON array', '[{"type":"hello","info":{}}]'],
    ['JSON null', 'null'],
    ['a missing type', '{"info":{}}'],
    ['an unknown type', '{"type":"welcome","id":"x"}'],
    ['a type inherited via __proto__', '{"__proto__":{"type":"hello"},"info":{}}'],
    ['a hello without info', '{"type":"hello"}'],
    ['a hello with array info', '{"type":"hello","info":[]}'],
    ['a hello with string info', '{"type":"hello","info":"tab"}'],
    ['a hello with extra keys', '{"type":"hello","info":{},"role":"ingress"}'],
    ['a signal without data', '{"type":"signal","to":"abc"}'],
    ['a signal with a numeric to', '{"type":"signal","to":1,"data":{}}'],
    ['a signal with an empty to', '{"type":"signal","to":"","data":{}}'],
    ['a signal with a spoofed from', '{"type":"signal","to":"abc","from":"someone","data":{}}'],
    ['a __proto__ key deep in data', '{"type":"signal","to":"abc","data":{"a":[{"__proto__":{"polluted":true}}]}}'],
    ['a constructor key in info', '{"type":"hello","info":{"constructor":{"prototype":{}}}}'],
  ])('rejects %s', (_label, text) => {
    expect(reasonFor(text)).toEqual(expect.any(String));
  });

  it('accepts a host\'s checked answer and status report, cutting a long error, and refuses malformed ones', () => {
    expect(parseClientMessage(JSON.stringify({ type: 'checked', id: 'c1', ok: false, error: 'x'.repeat(5000), ms: 3 }))).toEqual({
      ok: true,
      message: { type: 'checked', id: 'c1', ok: false, error: 'x'.repeat(2000), ms: 3 },
    });
    expect(parseClientMessage(JSON.stringify({ type: 'checked', id: 'c1', ok: 'yes', error: '', ms: 3 })).ok).toBe(false);
    expect(parseClientMessage(JSON.stringify({ type: 'checked', id: 'c1', ok: true, error: '', ms: -1 })).ok).toBe(false);
    const status = { type: 'status', apps: [{ name: 'hello', version: 3, state: 'serving' }] };
    expect(parseClientMessage(JSON.stringify(status))).toEqual({ ok: true, message: status });
    expect(parseClientMessage(JSON.stringify({ type: 'status', apps: [{ name: 'hello', version: 3, state: 'bored' }] })).ok).toBe(false);
    expect(parseClientMessage(JSON.stringify({ type: 'status', apps: [{ name: 'Hello!', version: 3, state: 'serving' }] })).ok).toBe(false);
    expect(parseClientMessage(JSON.stringify({ type: 'status', apps: [{ name: 'a', version: 1, state: 'serving', extra: 1 }] })).ok).toBe(false);
    // The deployment id a rollout is matched by (optional: hosts of older builds leave it out).
    const withId = { type: 'status', apps: [{ name: 'hello', version: 3, state: 'loading', sha256: 'ab12' }] };
    expect(parseClientMessage(JSON.stringify(withId))).toEqual({ ok: true, message: withId });
    expect(parseClientMessage(JSON.stringify({ type: 'status', apps: [{ name: 'a', version: 1, state: 'serving', sha256: 'NOT HEX' }] })).ok).toBe(false);
    expect(parseClientMessage(JSON.stringify({ type: 'status', apps: [{ name: 'a', version: 1, state: 'serving', sha256: 7 }] })).ok).toBe(false);
    expect(parseClientMessage(JSON.stringify({ type: 'status', apps: Array.from({ length: 1001 }, () => ({ name: 'a', version: 1, state: 'serving' })) })).ok).toBe(false);
  });

  it('rejects an id longer than the bound', () => {
    const to = 'a'.repeat(MAX_ID_LENGTH + 1);
    expect(reasonFor(JSON.stringify({ type: 'signal', to, data: 1 }))).toMatch(/at most/);
  });

  it('rejects hello info above the size bound, counted in UTF-8 bytes', () => {
    // Each é is two UTF-8 bytes, so this is under the bound in characters but over it in bytes.
    const name = '\u00e9'.repeat(MAX_INFO_BYTES / 2);
    expect(reasonFor(JSON.stringify({ type: 'hello', info: { name } }))).toMatch(/exceeds/);
  });

  it('accepts nesting up to the depth bound and rejects one level more', () => {
    const nest = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
    // The message object sits at depth 0, so data may nest MAX_DEPTH - 1 levels.
    expect(parseClientMessage(`{"type":"signal","to":"a","data":${nest(MAX_DEPTH - 1)}}`).ok).toBe(true);
    expect(reasonFor(`{"type":"signal","to":"a","data":${nest(MAX_DEPTH)}}`)).toMatch(/deeper/);
  });

  it('rejects hostile nesting of 30 000 levels without overflowing the stack', () => {
    const deep = '['.repeat(30_000) + ']'.repeat(30_000);
    expect(reasonFor(`{"type":"signal","to":"a","data":${deep}}`)).toMatch(/deeper/);
  });
});

describe('parseServerMessage', () => {
  const peer = { id: 'p1', role: 'host', info: { name: 'tab' }, since: 1 };

  it('parses each server message type', () => {
    expect(parseServerMessage(JSON.stringify({ type: 'welcome', id: 'me', role: 'ingress', peers: [peer] }))).toEqual({
      type: 'welcome',
      id: 'me',
      role: 'ingress',
      peers: [peer],
    });
    expect(parseServerMessage(JSON.stringify({ type: 'join', peer }))).toEqual({ type: 'join', peer });
    expect(parseServerMessage('{"type":"leave","id":"p1","reason":"closed"}')).toEqual({ type: 'leave', id: 'p1', reason: 'closed' });
    expect(parseServerMessage('{"type":"signal","from":"p1","data":[1]}')).toEqual({ type: 'signal', from: 'p1', data: [1] });
    expect(parseServerMessage('{"type":"error","code":"SIG_UNKNOWN_PEER","message":"m","to":"x"}')).toEqual({
      type: 'error',
      code: 'SIG_UNKNOWN_PEER',
      message: 'm',
      to: 'x',
    });
  });

  it('returns null for unknown types, unknown error codes and malformed shapes', () => {
    expect(parseServerMessage('{"type":"future","x":1}')).toBeNull();
    expect(parseServerMessage('{"type":"error","code":"NOPE","message":"m"}')).toBeNull();
    expect(parseServerMessage('{"type":"welcome","id":"me","role":"host","peers":[{"id":1}]}')).toBeNull();
    expect(parseServerMessage('not json')).toBeNull();
  });
});

describe('parseServerMessage: ICE servers', () => {
  const welcome = { type: 'welcome', id: 'me', role: 'host', peers: [] };
  const turn = { urls: ['turn:127.0.0.1:3478?transport=udp'], username: '1700003600:me', credential: 'xSRO4AsRHT7HtrlmB9FpUG3rMiw=' };

  it('keeps a welcome without iceServers as it is, and copies valid iceServers', () => {
    expect(parseServerMessage(JSON.stringify(welcome))).toEqual(welcome);
    expect(parseServerMessage(JSON.stringify({ ...welcome, iceServers: [{ urls: 'stun:127.0.0.1' }, turn] }))).toEqual({ ...welcome, iceServers: [{ urls: 'stun:127.0.0.1' }, turn] });
    expect(parseServerMessage(JSON.stringify({ type: 'ice', iceServers: [turn] }))).toEqual({ type: 'ice', iceServers: [turn] });
  });

  it('drops fields other than urls, username and credential', () => {
    const parsed = parseServerMessage(JSON.stringify({ ...welcome, iceServers: [{ ...turn, credentialType: 'oauth', extra: 1 }] }));
    expect(parsed).toEqual({ ...welcome, iceServers: [turn] });
  });

  it.each([
    ['not a list', { urls: 'stun:a' }],
    ['a URL that is not STUN or TURN', [{ urls: ['https://evil.example'] }]],
    ['no URL', [{ urls: [] }]],
    ['a numeric username', [{ ...turn, username: 7 }]],
    ['an overlong credential', [{ ...turn, credential: 'x'.repeat(513) }]],
    ['too many servers', Array.from({ length: 17 }, () => ({ urls: 'stun:a' }))],
  ])('rejects a welcome or ice message whose iceServers is %s', (_what, iceServers) => {
    expect(parseServerMessage(JSON.stringify({ ...welcome, iceServers }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ type: 'ice', iceServers }))).toBeNull();
  });
});
