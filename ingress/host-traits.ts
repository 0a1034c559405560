/**
 * What the ingress knows about a host, and the rules that follow from it: which apps it may
 * serve, which request headers it may see, how many requests it may hold.
 */
import type { AppRef, PeerInfo } from '../protocol/index.ts';
import { mayRun } from '../protocol/index.ts';

export interface HostTraits {
  /** Signaling says the host's token is a volunteer's invite. */
  volunteer: boolean;
  /** A volunteer's app scope (from its invite); null for any app it may run. */
  apps: string[] | null;
  /** What the host reports it can do (`webgpu`); self-reported, not verified. */
  capabilities: string[];
  /** The operator drained it: no new requests. */
  draining: boolean;
}

export const OPERATOR_HOST: HostTraits = { volunteer: false, apps: null, capabilities: [], draining: false };

export function hostTraits(peer: PeerInfo): HostTraits {
  const caps = peer.info['capabilities'];
  return {
    volunteer: peer.volunteer === true,
    apps: peer.apps ?? null,
    capabilities: Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string').slice(0, 16) : [],
    draining: peer.draining === true,
  };
}

/**
 * Whether a host may serve requests for `app`. With no control plane (`app` undefined: the
 * single app a bare network serves) only the operator's hosts do.
 */
export function mayServe(traits: HostTraits, app: AppRef | undefined): boolean {
  if (!app) return !traits.volunteer;
  if (!mayRun({ volunteer: traits.volunteer, apps: traits.apps }, app)) return false;
  return app.config.require.every((cap) => traits.capabilities.includes(cap));
}

/**
 * Request headers a volunteer's host never receives: nobody vouches for it, so it must not be
 * able to act as the visitor elsewhere (RELIABILITY.md §16).
 */
export const VOLUNTEER_WITHHELD_HEADERS: ReadonlySet<string> = new Set(['cookie', 'authorization', 'proxy-authorization']);
