/**
 * Default of `SignalingHubOptions.inviteGraceMs` (signaling-hub.ts): how long a volunteer keeps
 * serving after its invite expired, so requests in flight finish before its sessions end. Apart
 * from the hub so that `dcdn --help` can print it without loading signaling.
 */
export const INVITE_GRACE_MS = 10_000;
