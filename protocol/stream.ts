import { DcdnError, type ErrorCode } from './errors.ts';
import { FrameType, WS_DATA_FRAME_OVERHEAD, BODY_FRAME_OVERHEAD, WS_FRAME_VERSION, LIMITS, type Frame, type HeaderList, type HostTimes } from './frames.ts';

/** A request head as the opener sends it. */
export interface RequestHead {
  method: string;
  url: string;
  headers: HeaderList;
  /** The deployed app it is for; '' or absent when the host serves one app. */
  app?: string;
}

/** A response head as the acceptor sends it. */
export interface ResponseHead {
  status: number;
  headers: HeaderList;
}

/** Why a stream ended early: our own codes, or a code a peer sent (an untrusted string). */
export interface StreamError {
  code: string;
  message: string;
}

/** What a stream needs from its session; kept narrow so streams can't reach into it. */
export interface StreamSession {
  readonly maxBodyChunk: number;
  /** The version the session runs at (WebSocket frames need {@link WS_FRAME_VERSION}). */
  readonly version: number;
  send(frame: Frame, control?: boolean): void;
  waitWritable(): Promise<void>;
  streamClosed(stream: Stream): void;
}

/**
 * One request/response exchange inside a session, with credit-based flow control each way.
 *
 * The opener (ingress) sends the request and receives the response; the acceptor (host) the
 * reverse. Body bytes are sent only against credit the receiver granted (its HELLO window, then
 * CREDIT frames as its consumer calls `consume()`), so at most one window per stream is ever
 * buffered at the receiver whatever the body size. Handlers must be attached synchronously
 * (in `onstream` or right after `open()`): frames are not buffered for a missing handler.
 *
 * @example
 * ```ts
 * const s = session.open({ method: 'GET', url: '/', headers: [] }, true);
 * s.onhead = (head) => console.log(head.status);
 * s.ondata = (chunk) => { sink.write(chunk); s.consume(chunk.byteLength); };
 * s.onend = () => sink.end();
 * s.onreset = (err) => console.error(err.code);
 * ```
 */
export class Stream {
  readonly id: number;
  /** True for a stream this side opened (it sends the request). */
  readonly opener: boolean;
  /** The request head: known from the start on both sides. */
  readonly request: RequestHead;
  /**
   * Whether the request has a body (its head did not end the stream). Unlike `remoteEnded`
   * this does not change once the body has arrived, so an acceptor that looks late still
   * knows to read it.
   */
  readonly requestHasBody: boolean;

  onhead: ((head: ResponseHead) => void) | null = null;
  /**
   * On the acceptor: the opener asked for this request's hop timestamps (a TIMING_ASK came
   * right after the head; session.ts `sendTiming`). Set before the end of the turn the head
   * arrived in, never after.
   */
  timingAsked = false;
  /** On the opener: the host's hop timestamps (TIMING frame), just before its head. */
  ontiming: ((times: HostTimes) => void) | null = null;
  /**
   * Body bytes. Set it when ready: bytes that arrive before (an acceptor may look up its
   * handler asynchronously while the body is already in the same message) are kept, at most a
   * window, and handed over on assignment, in order, before `onend`.
   */
  get ondata(): ((chunk: Uint8Array) => void) | null {
    return this.#ondata;
  }
  set ondata(fn: ((chunk: Uint8Array) => void) | null) {
    this.#ondata = fn;
    this.#deliver();
  }
  /** The peer finished its body; fired once, after every byte went to `ondata`. */
  get onend(): (() => void) | null {
    return this.#onend;
  }
  set onend(fn: (() => void) | null) {
    this.#onend = fn;
    this.#deliver();
  }
  /** The stream failed: the peer reset it, broke protocol on it, or the session closed. */
  onreset: ((err: StreamError) => void) | null = null;
  /**
   * WebSocket mode (after a 101 head): a message, or a piece of one (`fin` on its last). The
   * bytes count against the receive window: hand them back with `consume()` once done with them.
   */
  onwsdata: ((data: Uint8Array, binary: boolean, fin: boolean) => void) | null = null;
  /** WebSocket mode: the peer closed its side (code 0: none given). */
  onwsclose: ((code: number, reason: string) => void) | null = null;

  #ondata: ((chunk: Uint8Array) => void) | null = null;
  #onend: (() => void) | null = null;
  /** Body received before `ondata` was set (copies: the transport may reuse its buffers). */
  #inbox: Uint8Array[] = [];
  #endPending = false;
  readonly #session: StreamSession;
  readonly #receiveWindow: number;
  #sendCredit: number;
  #recvWindow: number;
  #pendingCredit = 0;
  #creditWaiter: (() => void) | null = null;
  #headSent: boolean;
  #headReceived: boolean;
  #localEnded = false;
  #remoteEnded = false;
  #closed = false;
  #error: StreamError | null = null;
  /** Switched to WebSocket frames by a 101 head (docs/protocol.md, "WebSocket streams"). */
  #ws = false;
  #wsLocalClosed = false;
  #wsRemoteClosed = false;
  /** Body bytes received and sent, for logs and the ingress's length checks. */
  bytesIn = 0;
  bytesOut = 0;

  /** @internal Created by the session. */
  constructor(
    session: StreamSession,
    id: number,
    opener: boolean,
    request: RequestHead,
    windows: { send: number; receive: number },
    requestEnded: boolean,
  ) {
    this.#session = session;
    this.id = id;
    this.opener = opener;
    this.request = request;
    this.#sendCredit = windows.send;
    this.#recvWindow = windows.receive;
    this.#receiveWindow = windows.receive;
    // The opener's head is the request, sent at open; the acceptor's is the response.
    this.#headSent = opener;
    this.#headReceived = !opener;
    this.requestHasBody = !requestEnded;
    // A request head with endStream set carries no body: nothing more will come, or be sent.
    if (requestEnded) {
      if (opener) this.#localEnded = true;
      else this.#remoteEnded = true;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether this side has sent its head (always true for the opener). */
  get headSent(): boolean {
    return this.#headSent;
  }

  /** Whether the peer has finished sending (for an acceptor: the request had no body, or it all came). */
  get remoteEnded(): boolean {
    return this.#remoteEnded;
  }

  /** Whether this side may still write body bytes. */
  get writable(): boolean {
    return !this.#closed && !this.#localEnded;
  }

  /** Whether the stream carries WebSocket frames (its response head was 101). */
  get webSocket(): boolean {
    return this.#ws;
  }

  /**
   * Acceptor only: sends the response head; `endStream` for a response with no body. A 101
   * switches the stream to WebSocket frames (only at protocol version 3 and above).
   */
  respond(head: ResponseHead, endStream = false): void {
    if (this.opener || this.#headSent) throw new DcdnError('PROTO_STREAM_STATE', 'response head already sent');
    this.#assertOpen();
    if (head.status === 101) {
      if (this.#session.version < WS_FRAME_VERSION) throw new DcdnError('PROTO_VERSION', `WebSocket streams need protocol version ${WS_FRAME_VERSION}, the session runs at ${this.#session.version}`);
      this.#enterWs();
      endStream = false;
    }
    this.#headSent = true;
    this.#session.send({ type: FrameType.RES_HEAD, stream: this.id, status: head.status, headers: head.headers, endStream });
    if (endStream) this.#endLocal();
  }

  /**
   * Sends body bytes, cut to fit the channel's messages. Resolves once every byte is queued,
   * which waits for stream credit and for the channel to drain: awaiting each write is the
   * backpressure. Rejects if the stream fails meanwhile.
   */
  async write(chunk: Uint8Array): Promise<void> {
    if (!this.#headSent) throw new DcdnError('PROTO_STREAM_STATE', 'write before the response head');
    let offset = 0;
    while (offset < chunk.byteLength) {
      this.#assertWritable();
      if (this.#sendCredit <= 0) {
        await new Promise<void>((resolve) => (this.#creditWaiter = resolve));
        continue;
      }
      await this.#session.waitWritable();
      this.#assertWritable();
      if (this.#sendCredit <= 0) continue;
      const n = Math.min(this.#sendCredit, this.#session.maxBodyChunk, chunk.byteLength - offset);
      const data = chunk.subarray(offset, offset + n);
      this.#sendCredit -= n;
      offset += n;
      this.bytesOut += n;
      this.#session.send({ type: this.opener ? FrameType.REQ_BODY : FrameType.RES_BODY, stream: this.id, data });
    }
  }

  /**
   * WebSocket mode: sends one message, cut into WS_DATA pieces that fit a channel message and the
   * credit the peer granted (the last has `fin`). Resolves once every piece is queued: awaiting
   * it is the backpressure, as for `write()`. One message at a time: await each before sending
   * the next (pieces of two messages must not interleave). Rejects if the stream fails or this
   * side closed.
   */
  async sendWs(message: Uint8Array, binary: boolean): Promise<void> {
    let offset = 0;
    do {
      this.#assertWsOpen();
      if (this.#sendCredit <= 0 && message.byteLength > 0) {
        await new Promise<void>((resolve) => (this.#creditWaiter = resolve));
        continue;
      }
      await this.#session.waitWritable();
      this.#assertWsOpen();
      if (this.#sendCredit <= 0 && message.byteLength > 0) continue;
      const room = this.#session.maxBodyChunk - (WS_DATA_FRAME_OVERHEAD - BODY_FRAME_OVERHEAD);
      const n = Math.min(this.#sendCredit, room, message.byteLength - offset);
      const data = message.subarray(offset, offset + n);
      this.#sendCredit -= n;
      offset += n;
      this.bytesOut += n;
      const fin = offset >= message.byteLength;
      this.#session.send({ type: FrameType.WS_DATA, stream: this.id, binary, fin, data });
      if (fin) return;
    } while (offset < message.byteLength);
  }

  /**
   * WebSocket mode: closes this side (code 0 for none; the reason is cut to what the wire
   * carries). Once both sides have closed, the stream is over. Later calls do nothing.
   */
  closeWs(code: number, reason = ''): void {
    if (this.#closed || !this.#ws || this.#wsLocalClosed) return;
    this.#wsLocalClosed = true;
    this.#session.send({ type: FrameType.WS_CLOSE, stream: this.id, code, reason: reason.slice(0, LIMITS.wsReasonLength) });
    this.#wakeWriter();
    if (this.#wsRemoteClosed) this.#close(null);
  }

  /** Whether this side may still send WebSocket messages. */
  get wsWritable(): boolean {
    return !this.#closed && this.#ws && !this.#wsLocalClosed;
  }

  #enterWs(): void {
    this.#ws = true;
    // The request's end (or its missing body) means nothing any more: both directions stay open
    // until each side has sent WS_CLOSE.
    this.#localEnded = false;
    this.#remoteEnded = false;
  }

  #assertWsOpen(): void {
    this.#assertOpen();
    if (!this.#ws) throw new DcdnError('PROTO_STREAM_STATE', `stream ${this.id} is not a WebSocket`);
    if (this.#wsLocalClosed) throw new DcdnError('PROTO_STREAM_STATE', `stream ${this.id}: send after close`);
  }

  /** Ends this side's body. */
  end(): void {
    if (this.#closed || this.#localEnded) return;
    if (!this.#headSent) throw new DcdnError('PROTO_STREAM_STATE', 'end before the response head');
    this.#session.send({ type: this.opener ? FrameType.REQ_END : FrameType.RES_END, stream: this.id });
    this.#endLocal();
  }

  /**
   * Abandons the stream and tells the peer why (the ingress sends `PROTO_CANCELLED` when the
   * HTTP client goes away). Pending writes reject; `onreset` is not called for our own reset.
   */
  reset(code: ErrorCode | string, message = ''): void {
    if (this.#closed) return;
    this.#session.send({ type: FrameType.RESET, stream: this.id, code, message: message.slice(0, 1024) }, true);
    this.#close({ code, message });
  }

  /**
   * Hands `bytes` of received body back to the sender as credit, once the consumer is done with
   * them. Credit goes out in batches of half a window, so a CREDIT frame is not sent per chunk.
   */
  consume(bytes: number): void {
    if (this.#closed || this.#remoteEnded || this.#wsRemoteClosed || bytes <= 0) return;
    this.#pendingCredit += bytes;
    if (this.#pendingCredit >= this.#receiveWindow / 2) {
      const credit = this.#pendingCredit;
      this.#pendingCredit = 0;
      this.#recvWindow += credit;
      this.#session.send({ type: FrameType.CREDIT, stream: this.id, bytes: credit }, true);
    }
  }

  /** @internal The session routes this stream's frames here. */
  receive(frame: Frame): void {
    if (this.#closed) return;
    switch (frame.type) {
      case FrameType.RES_HEAD:
        if (!this.opener || this.#headReceived) return this.#violation('PROTO_STREAM_STATE', 'unexpected response head');
        this.#headReceived = true;
        if (frame.status === 101) {
          if (this.#session.version < WS_FRAME_VERSION) return this.#violation('PROTO_STREAM_STATE', 'a 101 head below protocol version 3');
          this.#enterWs();
          this.onhead?.({ status: frame.status, headers: frame.headers });
          return;
        }
        this.onhead?.({ status: frame.status, headers: frame.headers });
        if (frame.endStream && !this.#closed) this.#endRemote();
        return;
      case FrameType.WS_DATA: {
        if (!this.#ws || this.#wsRemoteClosed) return this.#violation('PROTO_STREAM_STATE', 'unexpected WebSocket data');
        const n = frame.data.byteLength;
        this.#recvWindow -= n;
        if (this.#recvWindow < 0) return this.#violation('PROTO_FLOW_CONTROL', 'WebSocket data exceeded the granted credit');
        this.bytesIn += n;
        this.onwsdata?.(frame.data, frame.binary, frame.fin);
        return;
      }
      case FrameType.WS_CLOSE:
        if (!this.#ws || this.#wsRemoteClosed) return this.#violation('PROTO_STREAM_STATE', 'unexpected WebSocket close');
        this.#wsRemoteClosed = true;
        this.onwsclose?.(frame.code, frame.reason);
        if (this.#wsLocalClosed && !this.#closed) this.#close(null);
        return;
      case FrameType.REQ_BODY:
      case FrameType.RES_BODY: {
        if (this.#ws) return this.#violation('PROTO_STREAM_STATE', 'body frame on a WebSocket stream');
        const fromOpener = frame.type === FrameType.REQ_BODY;
        if (fromOpener === this.opener || !this.#headReceived || this.#remoteEnded) {
          return this.#violation('PROTO_STREAM_STATE', 'unexpected body frame');
        }
        const n = frame.data.byteLength;
        this.#recvWindow -= n;
        if (this.#recvWindow < 0) return this.#violation('PROTO_FLOW_CONTROL', 'body exceeded the granted credit');
        this.bytesIn += n;
        if (this.#ondata && this.#inbox.length === 0) this.#ondata(frame.data);
        else {
          this.#inbox.push(frame.data.slice());
          this.#deliver();
        }
        return;
      }
      case FrameType.REQ_END:
      case FrameType.RES_END: {
        if (this.#ws) return this.#violation('PROTO_STREAM_STATE', 'end frame on a WebSocket stream');
        const fromOpener = frame.type === FrameType.REQ_END;
        if (fromOpener === this.opener || !this.#headReceived || this.#remoteEnded) {
          return this.#violation('PROTO_STREAM_STATE', 'unexpected end frame');
        }
        this.#endRemote();
        return;
      }
      case FrameType.CREDIT:
        this.#sendCredit += frame.bytes;
        if (this.#sendCredit > 0x7fffffff) return this.#violation('PROTO_FLOW_CONTROL', 'credit overflow');
        this.#wakeWriter();
        return;
      case FrameType.RESET:
        this.#close({ code: frame.code, message: frame.message });
        this.onreset?.({ code: frame.code, message: frame.message });
        return;
      default:
        return this.#violation('PROTO_STREAM_STATE', `frame type ${frame.type} on a stream`);
    }
  }

  /** @internal The peer broke protocol on this stream (or the session died): reset and report. */
  fail(code: ErrorCode, message: string, tellPeer: boolean): void {
    if (this.#closed) return;
    if (tellPeer) this.#session.send({ type: FrameType.RESET, stream: this.id, code, message }, true);
    this.#close({ code, message });
    this.onreset?.({ code, message });
  }

  #violation(code: ErrorCode, message: string): void {
    this.fail(code, message, true);
  }

  #endLocal(): void {
    this.#localEnded = true;
    this.#wakeWriter();
    if (this.#remoteEnded) this.#close(null);
  }

  /** Hands buffered body bytes, then the end, to the handlers once they are set. */
  #deliver(): void {
    while (this.#ondata && this.#inbox.length > 0) this.#ondata(this.#inbox.shift()!);
    if (this.#endPending && this.#inbox.length === 0 && this.#onend) {
      this.#endPending = false;
      this.#onend();
    }
  }

  #endRemote(): void {
    this.#remoteEnded = true;
    this.#endPending = true;
    this.#deliver();
    if (this.#localEnded) this.#close(null);
  }

  #close(error: StreamError | null): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    this.#wakeWriter();
    this.#session.streamClosed(this);
  }

  #wakeWriter(): void {
    const w = this.#creditWaiter;
    this.#creditWaiter = null;
    w?.();
  }

  #assertOpen(): void {
    if (this.#closed) {
      const e = this.#error;
      throw new DcdnError('PROTO_STREAM_STATE', e ? `stream ${this.id} was reset: ${e.code}` : `stream ${this.id} is closed`);
    }
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (this.#localEnded) throw new DcdnError('PROTO_STREAM_STATE', `stream ${this.id}: write after end`);
  }
}
