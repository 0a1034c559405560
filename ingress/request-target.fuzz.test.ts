/**
 * Property tests of request-target and Host validation (issue 15.18): whatever target and Host
 * a client sends, the ingress either refuses them with a coded 400 or forwards a URL whose
 * authority is the Host and whose path is a path, stable under a second pass.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { authorityProblem, resolveTarget } from './request-target.ts';

/** Characters that matter to URL parsers, weighted towards the tricky ones. */
const urlChar = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('/', '/', '.', '..', '%2e', '%2E', '%2f', '\\', '@', ':', '?', '#', '//', ';', '%', '%00', '[', ']') },
  { weight: 2, arbitrary: fc.constantFrom('a', 'x', 'evil.example', 'http:', 'https://', 'ftp://', 'localhost', '80', '*') },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 3 }) },
);
const target = fc.array(urlChar, { maxLength: 12 }).map((parts) => parts.join(''));
const hostChar = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('x', 'example', '.', '-', '_', '1', ':', '8080', '[', ']', '::1', '@', '/', '?', '#', ' ', '%') },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 2 }) },
);
const host = fc.oneof(fc.constantFrom('x', 'example.com', '127.0.0.1:8080', '[::1]:9', 'a.localhost'), fc.array(hostChar, { maxLength: 8 }).map((p) => p.join('')));

describe('resolveTarget() under arbitrary targets and Host headers', () => {
  it('refuses with a coded 400, or forwards the Host and a path, never another authority', () => {
    fc.assert(
      fc.property(target, host, fc.constantFrom('http', 'https'), (t, h, protocol) => {
        const r = resolveTarget(t, h, protocol);
        if ('error' in r) {
          expect(['INGRESS_BAD_REQUEST', 'INGRESS_BAD_HOST']).toContain(r.error);
          if (r.error === 'INGRESS_BAD_HOST') expect(authorityProblem(h)).not.toBeNull();
          return;
        }
        expect(authorityProblem(h)).toBeNull();
        expect(r.path.startsWith('/')).toBe(true);
        // The URL the handler sees: its authority is the Host's, its path this path.
        const url = new URL(`${protocol}://${r.authority}${r.path}`);
        expect(url.host).toBe(r.authority);
        expect(url.host).toBe(new URL(`${protocol}://${h}/`).host);
        expect(`${url.pathname}${url.search}`).toBe(r.path);
        expect(url.username + url.password + url.hash).toBe('');
        // Normalising is done once and for all: a second pass changes nothing.
        expect(resolveTarget(r.path, h, protocol)).toEqual(r);
      }),
      { numRuns: 5000 },
    );
  });

  it('accepts every authority a URL parser reads back as itself', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
    const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
    const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined });
    fc.assert(
      fc.property(name, port, (n, p) => {
        const h = p === undefined ? n : `${n}:${p}`;
        expect(authorityProblem(h)).toBeNull();
      }),
      { numRuns: 1000 },
    );
  });
});
