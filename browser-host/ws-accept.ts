import { headProblem, WS_FRAME_VERSION, type Session, type Stream } from '../protocol/index.ts';
import type { SandboxReply } from './sandbox/sandbox.ts';
import { bridgeWebSocket } from './ws-bridge.ts';

/**
 * Answers a request whose handler accepted a WebSocket (a 101 with a `webSocket`): sends the
 * 101 head and carries the socket (ws-bridge.ts) until it closes. Refused, with the app's code,
 * when the request was no WebSocket upgrade (the ingress sends those with `upgrade: websocket`),
 * when the session's peer speaks no WebSocket frames (protocol version below 3), or when the
 * head would not fit the wire. Resolves when the socket is over.
 */
export async function serveWebSocket(
  stream: Stream,
  session: Session,
  reply: SandboxReply,
  log: (line: string) => void,
  fail: (code: string, message: string) => void,
): Promise<void> {
  const port = reply.webSocket;
  const refuse = (why: string) => {
    port?.close();
    log(`WebSocket refused: ${why}`);
    fail('HOST_BAD_HANDLER_RESPONSE', why);
  };
  if (!port || reply.status !== 101) return refuse('a 101 response needs a webSocket, and a webSocket a 101');
  const upgrade = stream.request.headers.some(([n, v]) => n.toLowerCase() === 'upgrade' && v.toLowerCase() === 'websocket');
  if (!upgrade) return refuse('the handler answered 101 to a request that asked for no WebSocket');
  if (session.version < WS_FRAME_VERSION) return refuse(`the ingress speaks protocol version ${session.version}, WebSockets need ${WS_FRAME_VERSION}`);
  const tooBig = headProblem('', reply.headers);
  if (tooBig) return refuse(`the response head is too large for the wire: ${tooBig.message}`);
  if (stream.closed) return void port.close();
  stream.respond({ status: 101, headers: reply.headers });
  await bridgeWebSocket(stream, port, log, reply.workerGone);
}
