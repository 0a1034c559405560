/**
 * Carries one accepted WebSocket between a request's stream (WS_DATA/WS_CLOSE frames, from the
 * ingress, which holds the visitor's socket) and the sandbox worker's server end of it (a
 * `MessagePort`, websocket-pair.ts).
 *
 * Flow control, ingress → handler: bytes received are handed back as credit only while the
 * messages posted to the worker and not yet acknowledged (their listeners have not run) stay
 * under {@link WS_BRIDGE_LIMITS.inWorkerBytes}; past it credit waits for acknowledgements, the
 * ingress runs out of credit and stops reading the visitor's socket. Handler → ingress: messages
 * are written one after the other with the stream's credit; at most
 * {@link WS_BRIDGE_LIMITS.queuedBytes} may wait (a handler that sends much faster than the
 * visitor reads is cut off with 1008 rather than buffered without bound).
 */
import { concatBytes, type Stream } from '../protocol/index.ts';
import { parseWsMessage, type WsFromHost } from './sandbox/messages.ts';

export const WS_BRIDGE_LIMITS = {
  /** Bytes of received messages the worker may hold unacknowledged before credit waits. */
  inWorkerBytes: 256 * 1024,
  /** Largest message accepted from the ingress (which enforces its own, smaller limit). */
  maxMessageBytes: 32 * 1024 * 1024,
  /** Bytes the handler may have sent that wait for credit before its socket is closed with 1008. */
  queuedBytes: 16 * 1024 * 1024,
} as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Bridges `stream` (already answered 101) and `port` until both sides have closed, the stream
 * fails, or the port's worker goes away. Resolves when it is over.
 */
export function bridgeWebSocket(stream: Stream, port: MessagePort, log: (line: string) => void = () => {}, workerGone?: Promise<string>): Promise<void> {
  return new Promise<void>((resolve) => {
    let over = false;
    let pieces: Uint8Array[] = [];
    let pieceBytes = 0;
    /** Bytes received and not yet handed back as credit. */
    let owed = 0;
    /** Bytes posted to the worker whose listeners have not run yet. */
    let inWorker = 0;
    let queued = 0;
    let sending: Promise<void> = Promise.resolve();
    const post = (m: WsFromHost, transfer: Transferable[] = []) => {
      try {
        port.postMessage(m, transfer);
      } catch {
        // the worker is gone; the stream ends with the bridge
      }
    };
    const settle = () => {
      if (owed > 0 && inWorker < WS_BRIDGE_LIMITS.inWorkerBytes) {
        stream.consume(owed);
        owed = 0;
      }
    };
    const finish = () => {
      if (over) return;
      over = true;
      port.onmessage = null;
      port.close();
      resolve();
    };
    const fail = (code: number, reason: string) => {
      // The visitor's side hears `code`; the handler's hears of a lost connection.
      post({ t: 'close', code: 1006, reason });
      if (stream.wsWritable) stream.closeWs(code, reason);
      if (!stream.closed) stream.reset('HOST_WEBSOCKET_FAILED', reason);
      finish();
    };

    // A recycled or closed sandbox ends its worker, whose port then goes silent: 1012, restart.
    void workerGone?.then((why) => {
      if (over) return;
      log(`WebSocket closed: ${why}`);
      if (stream.wsWritable) stream.closeWs(1012, 'the app was restarted');
      if (!stream.closed) stream.reset('HOST_SANDBOX_RECYCLED', why);
      finish();
    });
    stream.onwsdata = (data, binary, fin) => {
      owed += data.byteLength;
      pieceBytes += data.byteLength;
      if (pieceBytes > WS_BRIDGE_LIMITS.maxMessageBytes) return fail(1009, 'message too big');
      pieces.push(data.slice());
      if (fin) {
        const whole = concatBytes(pieces);
        const bytes = pieceBytes;
        pieces = [];
        pieceBytes = 0;
        inWorker += bytes;
        if (binary) post({ t: 'message', data: whole.buffer as ArrayBuffer, bytes }, [whole.buffer as ArrayBuffer]);
        else post({ t: 'message', data: decoder.decode(whole), bytes });
      }
      settle();
    };
    stream.onwsclose = (code, reason) => {
      post({ t: 'close', code, reason });
      // This side had closed already: the stream is over. Else the handler answers (or the
      // worker does for it), and the stream ends once it has.
      if (!stream.wsWritable) queueMicrotask(finish);
    };
    stream.onreset = (err) => {
      post({ t: 'close', code: 1006, reason: err.code });
      finish();
    };
    port.onmessage = (event) => {
      if (over) return;
      const m = parseWsMessage(event.data);
      if (typeof m === 'string') {
        log(`a sandbox's WebSocket message was refused: ${m}`);
        return fail(1011, 'the handler broke protocol');
      }
      if (m.t === 'ack') {
        inWorker = Math.max(0, inWorker - m.bytes);
        return settle();
      }
      if (m.t === 'close') {
        sending = sending.then(() => {
          if (stream.wsWritable) stream.closeWs(m.code, m.reason);
          if (stream.closed) finish();
        });
        return;
      }
      const bytes = typeof m.data === 'string' ? encoder.encode(m.data) : new Uint8Array(m.data);
      queued += bytes.byteLength;
      if (queued > WS_BRIDGE_LIMITS.queuedBytes) return fail(1008, 'the handler sent faster than the client reads');
      const binary = typeof m.data !== 'string';
      sending = sending.then(async () => {
        try {
          if (stream.wsWritable) await stream.sendWs(bytes, binary);
        } catch {
          // the stream failed; its reset ends the bridge
        }
        queued -= bytes.byteLength;
      });
    };
  });
}
