/** `dcdn bench`: being built (issue 3). */
export const benchUsage = 'dcdn bench [--quick] [--json FILE]';
export async function runBench(_argv: string[]): Promise<number> {
  process.stderr.write('dcdn bench: not built yet\n');
  return 1;
}
