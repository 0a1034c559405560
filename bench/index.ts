/**
 * `dcdn bench`: the benchmark's entry. cli/ loads it only by a dynamic import when the command
 * runs, so `dcdn --help` and every other command never load the benchmark's tools.
 */
export { benchUsage, runBench } from './run.ts';
