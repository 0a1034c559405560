/**
 * How the Node API reports what it does: one call per line, with a level, a message for people
 * and fields for machines. `dcdn` passes its own logger; a program embedding the parts passes
 * whatever it logs with (or `() => {}`).
 */
export type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** A {@link Log} that drops every line. */
export const silentLog: Log = () => {};
