/**
 * Two Sessions joined by an in-memory channel pair, client and server, both ready: how the
 * protocol's session and WebSocket-stream tests start. The caller closes them in its teardown,
 * so they go into its `open` list.
 */
import { createMemoryChannelPair } from '../protocol/memory-channel.ts';
import { Session, type SessionOptions } from '../protocol/session.ts';

export async function sessionPair(open: Session[], opts: Partial<SessionOptions> = {}, maxMessageSize = 16 * 1024) {
  const [a, b] = createMemoryChannelPair({ maxMessageSize });
  const client = new Session(a, { role: 'client', ...opts });
  const server = new Session(b, { role: 'server', ...opts });
  open.push(client, server);
  await Promise.all([client.ready, server.ready]);
  return { client, server, a, b };
}
