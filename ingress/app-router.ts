import type { AppRef } from '../protocol/index.ts';

/** How the ingress maps a request to a deployed app. */
export interface AppRouterOptions {
  /** `NAME.<baseDomain>` routes to app NAME. Default `localhost` (browsers resolve *.localhost to loopback). */
  baseDomain?: string;
  /** `<pathPrefix>NAME/…` routes to app NAME, for setups without wildcard DNS. Default `/@`. */
  pathPrefix?: string;
  /** The app that answers everything else. Default `default`. */
  defaultApp?: string;
}

export type Route = { app: string; target: string; prefix: string } | { unknown: string };

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Routes by hostname first (`hello.localhost:8080/x` → app `hello`, path `/x`), then by path
 * prefix (`/@hello/x` → app `hello`, path `/x`, `x-forwarded-prefix: /@hello`), else to the
 * default app. Until signaling has said which apps exist, every request goes to app `''`: the
 * one app a host serves in a network without a control plane.
 */
export class AppRouter {
  readonly #base: string;
  readonly #prefix: string;
  readonly #default: string;
  #apps: Set<string> | null = null;
  #refs = new Map<string, AppRef>();

  constructor(options: AppRouterOptions = {}) {
    this.#base = (options.baseDomain ?? 'localhost').toLowerCase().replace(/^\.+|\.+$/g, '');
    this.#prefix = options.pathPrefix ?? '/@';
    this.#default = options.defaultApp ?? 'default';
  }

  /** The deployed apps' active versions and configs, from signaling. */
  setApps(refs: Iterable<AppRef>): void {
    this.#refs = new Map([...refs].map((r) => [r.name, r]));
    this.#apps = new Set(this.#refs.keys());
  }

  /** An app's active version and deploy config; undefined before signaling said, or for none. */
  ref(name: string): AppRef | undefined {
    return this.#refs.get(name);
  }

  get apps(): ReadonlySet<string> | null {
    return this.#apps;
  }

  route(hostHeader: string | undefined, target: string): Route {
    const apps = this.#apps;
    if (!apps) return { app: '', target, prefix: '' };
    const hostname = (hostHeader ?? '').replace(/:\d+$/, '').replace(/\.$/, '').toLowerCase();
    if (hostname.endsWith(`.${this.#base}`)) {
      const label = hostname.slice(0, -this.#base.length - 1);
      if (LABEL.test(label)) return apps.has(label) ? { app: label, target, prefix: '' } : { unknown: label };
    }
    if (target.startsWith(this.#prefix)) {
      const rest = target.slice(this.#prefix.length);
      const end = rest.search(/[/?]/);
      const name = end === -1 ? rest : rest.slice(0, end);
      if (LABEL.test(name)) {
        if (!apps.has(name)) return { unknown: name };
        const after = end === -1 ? '' : rest.slice(end);
        return { app: name, target: after.startsWith('/') ? after : `/${after}`, prefix: `${this.#prefix}${name}` };
      }
    }
    return apps.has(this.#default) ? { app: this.#default, target, prefix: '' } : { unknown: this.#default };
  }
}
