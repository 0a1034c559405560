/**
 * web-compat.ts against the Fetch rules it stands in for, with Node's own Headers, Request and
 * Response (undici follows the same standard as browsers for what is checked here).
 */
import { describe, expect, it } from 'vitest';
import { installResponseShim, isHeaderListCanonical, makeRequest, responseHeaderList } from './web-compat.ts';

type List = Array<[string, string]>;

function viaHeaders(list: List): List {
  const headers = new Headers();
  for (const [name, value] of list) headers.append(name, value);
  return responseHeaderList(headers);
}

describe('isHeaderListCanonical', () => {
  const canonical: List[] = [
    [],
    [['content-type', 'text/plain']],
    [['a', '1'], ['b', ''], ['x-y', 'v w']],
    [['content-length', '5'], ['set-cookie', 'a=1; Path=/'], ['set-cookie', 'b=2']],
    [['x-z', 'last'], ['set-cookie', 'a=1']],
    [['set-cookie', 'only']],
    [['etag', '"\u00e9\u00ff"']],
  ];
  const notCanonical: List[] = [
    [['Content-Type', 'text/plain']], // Headers lowercases
    [['b', '1'], ['a', '2']], // Headers sorts
    [['a', '1'], ['a', '2']], // Headers combines
    [['set-cookie', 'a=1'], ['x', '1']], // Set-Cookie comes last
    [['a', ' padded']],
    [['a', 'padded\t']],
    [['bad name', 'x']],
    [['a', 'line\nbreak']],
    [['a', 'nul\u0000']],
    [['a', '\u0100 beyond a byte']],
    [['', 'empty name']],
  ];

  it('accepts exactly what a Headers would list unchanged', () => {
    for (const list of canonical) {
      expect(isHeaderListCanonical(list)).toBe(true);
      expect(viaHeaders(list)).toEqual(list);
    }
  });

  it('refuses lists a Headers would change or refuse', () => {
    for (const list of notCanonical) {
      expect(isHeaderListCanonical(list)).toBe(false);
      let normalised: List | null = null;
      try {
        normalised = viaHeaders(list);
      } catch {
        // invalid: the caller's Headers throws, as it did before
      }
      if (normalised) expect(normalised).not.toEqual(list);
    }
  });

  it('agrees with Headers on what a worker sends back', () => {
    const init: Array<HeadersInit> = [
      { 'content-type': 'text/html', 'x-b': '2', 'x-a': '1' },
      [['set-cookie', 'a=1'], ['Vary', 'accept'], ['set-cookie', 'b=2'], ['vary', 'origin']],
      { 'cache-control': ' no-store ' },
    ];
    for (const h of init) {
      const list = responseHeaderList(new Headers(h));
      expect(isHeaderListCanonical(list)).toBe(true);
      expect(viaHeaders(list)).toEqual(list);
    }
  });
});

describe('makeRequest', () => {
  it('gives every header, in order and unguarded, the same object each time', () => {
    const headers: List = [['host', 'shop.example'], ['cookie', 'a=1'], ['x-b', '2'], ['x-a', '1']];
    const request = makeRequest('https://shop.example/', { method: 'GET' }, headers);
    expect(request.headers).toBe(request.headers);
    expect([...request.headers]).toEqual([...new Headers(headers)]);
    expect(request.headers.get('cookie')).toBe('a=1');
    expect(Object.keys(request)).toContain('headers');
  });
});

describe('the Response shim', () => {
  it('keeps init headers and Set-Cookie, and adds the Content-Type the body implies', () => {
    const scope = { Response: globalThis.Response };
    installResponseShim(scope);
    const bodies: Array<BodyInit | null> = [null, 'text', new Blob(['x'], { type: 'image/png' }), new URLSearchParams('a=1'), new Uint8Array([1]), new ArrayBuffer(2)];
    const inits: ResponseInit[] = [{}, { headers: { 'x-a': '1' } }, { headers: [['set-cookie', 'a=1'], ['content-type', 'text/custom']] }];
    for (const body of bodies) {
      for (const init of inits) {
        const shimmed = new scope.Response(body, init);
        // What the shim did before: every header of the native Response that init lacked.
        const expected = new Headers(init.headers);
        for (const [name, value] of new globalThis.Response(body, init).headers) if (!expected.has(name)) expected.set(name, value);
        expect([...shimmed.headers]).toEqual([...expected]);
        expect(shimmed.headers.getSetCookie()).toEqual(expected.getSetCookie());
      }
    }
  });
});
