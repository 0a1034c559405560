/**
 * The Node API of dcdn: start each part (signaling, an ingress, Chromium host tabs), a whole
 * local network, or deploy a file into an app store. `dcdn` is a thin layer of flags over this;
 * the benchmark and the tests start their parts through it too.
 */
export { deployFile } from './deploy-file.ts';
export { launchAllowHosts, launchHosts, type LaunchHostsOptions } from './launch-hosts.ts';
export { silentLog, type Log } from './log.ts';
export { redactSpec, startIngress, type StartIngressOptions } from './start-ingress.ts';
export { startNetwork, type Network, type StartNetworkOptions } from './start-network.ts';
export { activeVersion, DEMO_APP_MESSAGE, DEV_APP_MESSAGE, newSecret, signalUrls, startSignal, type StartedSignal, type StartSignalOptions } from './start-signal.ts';
