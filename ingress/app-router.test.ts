import type { AppRef } from '../protocol/index.ts';
import { describe, expect, it } from 'vitest';
import { AppRouter } from './app-router.ts';

describe('AppRouter', () => {
  const router = new AppRouter();
  router.setApps(refs('default', 'hello', 'my-app'));

  it('routes NAME.localhost to app NAME, keeping the path', () => {
    expect(router.route('hello.localhost:8080', '/a?b=1')).toEqual({ app: 'hello', target: '/a?b=1', prefix: '' });
    expect(router.route('My-App.LOCALHOST.', '/')).toEqual({ app: 'my-app', target: '/', prefix: '' });
  });

  it('routes /@NAME/… to app NAME and strips the prefix', () => {
    expect(router.route('127.0.0.1:8080', '/@hello/x/y?z')).toEqual({ app: 'hello', target: '/x/y?z', prefix: '/@hello' });
    expect(router.route('127.0.0.1:8080', '/@hello')).toEqual({ app: 'hello', target: '/', prefix: '/@hello' });
    expect(router.route('127.0.0.1:8080', '/@hello?q')).toEqual({ app: 'hello', target: '/?q', prefix: '/@hello' });
  });

  it('sends everything else to the default app', () => {
    expect(router.route('127.0.0.1:8080', '/x')).toEqual({ app: 'default', target: '/x', prefix: '' });
    expect(router.route(undefined, '/x')).toEqual({ app: 'default', target: '/x', prefix: '' });
    // Not a single label, so not an app name: the default app answers.
    expect(router.route('a.b.localhost', '/x')).toMatchObject({ app: 'default' });
  });

  it('names the unknown app instead of falling through to the default', () => {
    expect(router.route('nope.localhost', '/')).toEqual({ unknown: 'nope' });
    expect(router.route('localhost', '/@nope/x')).toEqual({ unknown: 'nope' });
  });

  it('uses a configured base domain and prefix', () => {
    const r = new AppRouter({ baseDomain: 'apps.example.com', pathPrefix: '/apps/' });
    r.setApps(refs('hello'));
    expect(r.route('hello.apps.example.com', '/')).toMatchObject({ app: 'hello' });
    expect(r.route('hello.localhost', '/')).toEqual({ unknown: 'default' });
    expect(r.route('x', '/apps/hello/z')).toEqual({ app: 'hello', target: '/z', prefix: '/apps/hello' });
  });

  it('sends every request to app "" until signaling has named the apps', () => {
    expect(new AppRouter().route('hello.localhost', '/@x/y')).toEqual({ app: '', target: '/@x/y', prefix: '' });
  });
});

function refs(...names: string[]): AppRef[] {
  return names.map((name) => ({ name, version: 1, sha256: '0'.repeat(64), config: { kv: [], volunteers: false, require: [], vars: {} } }));
}
