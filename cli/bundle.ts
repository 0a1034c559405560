/** How the CLI reports an app that does not build (dcdn deploy, dcdn up --app). */

/** esbuild's messages of a failed build as `file:line:col: text` lines, else the error's message. */
export function buildErrorLines(err: unknown): string[] {
  const errors = (err as { errors?: Array<{ text: string; location?: { file: string; line: number; column: number } | null }> }).errors;
  if (!errors?.length) return [(err as Error).message];
  return errors.map((e) => `${e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ` : ''}${e.text}`);
}
