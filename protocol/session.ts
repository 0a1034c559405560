import type { Channel } from './channel.ts';
import { concatFrames, encodeFrame, forEachFrame, helloFrame, type InvalidFrameError } from './codec.ts';
import { DcdnError, errorCodeOf, type ErrorCode } from './errors.ts';
import { FrameBudgets, frameKind, type Budget, type FrameKind } from './frame-budget.ts';
import { BODY_FRAME_OVERHEAD, FrameType, LIMITS, LOG_FRAME_VERSION, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, TIMING_FRAME_VERSION, type Frame, type HostTimes, type LogFrame, type LogLevel } from './frames.ts';
import { Stream, type RequestHead, type StreamSession } from './stream.ts';
import { onNextTask, onNextTurn } from './turn.ts';

/** Named, configurable limits and timings of a session. */
export interface SessionOptions {
  /** `client` opens streams (the ingress), `server` accepts them (a host). */
  role: 'client' | 'server';
  /** Body bytes this side accepts per stream before it must hand back credit. Default 256 KiB. */
  receiveWindow?: number;
  /**
   * Bytes queued in the session plus the channel's `bufferedAmount` at which body writers wait
   * for the channel to drain. Default 1 MiB.
   */
  highWaterMark?: number;
  /** How often to ping the peer. Default 1000 ms. */
  heartbeatIntervalMs?: number;
  /**
   * Silence after which the peer is declared dead and every stream fails. Default 2500 ms:
   * two missed pings, so a dead tab is noticed within 3 s.
   */
  heartbeatTimeoutMs?: number;
  /** How long to wait for the peer's HELLO. Default 10000 ms. */
  helloTimeoutMs?: number;
  /** Streams the peer may have open here at once; more are refused. Default 1024. */
  maxIncomingStreams?: number;
  /** Names this side's software in HELLO, for the peer's logs. */
  agent?: string;
  /**
   * Incoming frames per kind the peer may send (frame-budget.ts); past one, the session is
   * closed with PROTO_RATE_LIMITED. Defaults far above a well-behaved peer's needs.
   */
  frameBudgets?: Partial<Record<FrameKind, Budget>>;
  /**
   * Bytes queued for the peer (in the session and the channel's `bufferedAmount`) past which
   * it is taken to have stopped reading and the session is closed with PROTO_SLOW_PEER, rather
   * than buffering for it (control frames, PONGs included, are not held back by
   * `highWaterMark`). Default 16 MiB.
   */
  maxOutboundBytes?: number;
}

export const SESSION_DEFAULTS = {
  receiveWindow: 256 * 1024,
  highWaterMark: 1024 * 1024,
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 2500,
  helloTimeoutMs: 10_000,
  maxIncomingStreams: 1024,
  agent: 'dcdn',
  frameBudgets: {},
  maxOutboundBytes: 16 * 1024 * 1024,
} as const;

/** Counters for health reports and tests. */
export interface SessionStats {
  messagesIn: number;
  messagesOut: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Frames for streams that never existed: a buggy or hostile peer. Dropped. */
  unknownStreamFrames: number;
  /** Frames for streams already finished (normal after a reset). Dropped. */
  lateFrames: number;
  /** Streams failed because the peer broke protocol on them. */
  streamErrors: number;
}

/**
 * A multiplexed session over one {@link Channel}: many concurrent streams, per-stream credit
 * flow control, channel backpressure, frame coalescing and a heartbeat.
 *
 * Frames queued in the same event-loop turn go out together in as few messages as fit the
 * channel's maximum message size (turn.ts says why per turn, not per microtask). Control frames (credit, reset, ping, pong) jump the queue and ignore the
 * high-water mark so that flow control and liveness work under bulk load.
 *
 * @example
 * ```ts
 * const session = new Session(channel, { role: 'server' });
 * session.onstream = (stream) => { stream.respond({ status: 200, headers: [] }, true); };
 * session.onclose = (err) => console.log('closed', err.code);
 * ```
 */
export class Session {
  readonly role: 'client' | 'server';
  readonly stats: SessionStats = {
    messagesIn: 0, messagesOut: 0, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0,
    unknownStreamFrames: 0, lateFrames: 0, streamErrors: 0,
  };
  /** A stream the peer opened. Attach its handlers before returning. */
  onstream: ((stream: Stream) => void) | null = null;
  /** The session ended; every open stream has already been failed with the same error. */
  onclose: ((err: DcdnError) => void) | null = null;
  /** Resolves when the peer's HELLO arrived; rejects if the session closes first. */
  readonly ready: Promise<void>;
  /** The peer's HELLO agent string, once known. */
  peerAgent = '';
  /**
   * The version this session runs at: the lower of the two HELLOs' (frames.ts,
   * MIN_PROTOCOL_VERSION), once the peer's has arrived; 0 before.
   */
  version = 0;
  /**
   * A LOG frame from the peer (a handler's console output, frames.ts `LogFrame`). Unset: they
   * are dropped. Only ever called at version 2 or above.
   */
  onlog: ((frame: LogFrame) => void) | null = null;
  /** Round-trip time of the last answered ping, in ms. */
  rttMs: number | undefined;

  readonly #channel: Channel;
  readonly #opts: Required<Omit<SessionOptions, 'role'>>;
  readonly #streams = new Map<number, Stream>();
  readonly #streamApi: StreamSession;
  #peerWindow = 0;
  #helloReceived = false;
  #nextLocalId: number;
  #lastPeerId = 0;
  /**
   * Peer streams reset before their head arrived: RESET is a control frame and overtakes the
   * head the peer queued in the same turn (open, then cancel at once). Their heads are dropped.
   */
  readonly #earlyResets = new Set<number>();
  /** Open streams the peer opened (maxIncomingStreams counts these, not our own). */
  #incoming = 0;
  #control: Uint8Array[] = [];
  #controlBytes = 0;
  readonly #budgets: FrameBudgets;
  #data: Uint8Array[] = [];
  #dataBytes = 0;
  #flushScheduled = false;
  #writeWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  /** Called after the next flush has handed its messages to the channel (`whenSent`). */
  #sentWatchers: Array<() => void> = [];
  #closed: DcdnError | null = null;
  #lastReceived = Date.now();
  #pings = new Map<number, number>();
  #pingWaiters = new Map<number, { resolve: (rtt: number) => void; reject: (e: unknown) => void }>();
  #nonce = 0;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lastPing = 0;
  #helloTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveReady!: () => void;
  #rejectReady!: (e: unknown) => void;

  constructor(channel: Channel, options: SessionOptions) {
    this.role = options.role;
    this.#opts = { ...SESSION_DEFAULTS, ...stripUndefined(options) };
    this.#channel = channel;
    this.#budgets = new FrameBudgets(this.#opts.frameBudgets);
    this.#nextLocalId = options.role === 'client' ? 1 : 2;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    this.ready.catch(() => {}); // observed through onclose too; never an unhandled rejection
    const session = this;
    this.#streamApi = {
      get maxBodyChunk() {
        return session.#channel.maxMessageSize - BODY_FRAME_OVERHEAD;
      },
      get version() {
        return session.version;
      },
      send: (frame, control) => this.#send(frame, control),
      waitWritable: () => this.#waitWritable(),
      streamClosed: (s) => {
        if (this.#streams.delete(s.id) && !s.opener) this.#incoming--;
      },
    };

    channel.lowWaterMark = Math.floor(this.#opts.highWaterMark / 2);
    channel.onmessage = (data) => this.#onMessage(data);
    channel.ondrain = () => this.#flush();
    channel.onclose = (reason) => this.#shutdown(new DcdnError('PROTO_SESSION_CLOSED', `channel closed: ${reason}`), false);

    // The HELLO leaves a task later (turn.ts, onNextTask); whatever is queued meanwhile follows it.
    this.#flushScheduled = true;
    onNextTask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
    this.#send(helloFrame(this.#opts.receiveWindow, this.#opts.agent), true);
    this.#helloTimer = setTimeout(() => {
      this.close('PROTO_HELLO_TIMEOUT', `no HELLO within ${this.#opts.helloTimeoutMs} ms`);
    }, this.#opts.helloTimeoutMs);
    this.#heartbeat = setInterval(() => this.#tick(), Math.max(10, Math.floor(this.#opts.heartbeatIntervalMs / 4)));
  }

  /** Streams open right now. */
  get openStreams(): number {
    return this.#streams.size;
  }

  get isClosed(): boolean {
    return this.#closed !== null;
  }

  /** The peer's HELLO has arrived and the session has not closed: streams may be opened. */
  get isOpen(): boolean {
    return this.#helloReceived && this.#closed === null;
  }

  /** Why the session closed, once it has. */
  get closeError(): DcdnError | null {
    return this.#closed;
  }

  /**
   * Opens a stream and sends the request head; `endStream` when there is no request body.
   * Either side may open streams after `ready` (ingress: requests; host: KV operations); ids
   * follow the role's parity.
   */
  open(head: RequestHead, endStream: boolean): Stream {
    if (this.#closed) throw this.#closed;
    if (!this.#helloReceived) throw new DcdnError('PROTO_STREAM_STATE', 'open before the peer said HELLO');
    const id = this.#nextLocalId;
    this.#nextLocalId += 2;
    const windows = { send: this.#peerWindow, receive: this.#opts.receiveWindow };
    const stream = new Stream(this.#streamApi, id, true, head, windows, endStream);
    this.#streams.set(id, stream);
    this.#send({ type: FrameType.REQ_HEAD, stream: id, method: head.method, url: head.url, headers: head.headers, endStream, app: head.app ?? '' });
    return stream;
  }

  /**
   * Sends one line of a handler's console output for the request `requestId` (frames.ts
   * `LogFrame`). Returns false, sending nothing, when the session is closed or the peer speaks a
   * version without LOG frames. The text is cut to the frame's limit. Queued with the data, so
   * it never overtakes flow control; the caller bounds how much it sends (console-log.ts).
   */
  sendLog(requestId: string, level: LogLevel, text: string, cutLines = 0, cutBytes = 0): boolean {
    if (this.#closed || this.version < LOG_FRAME_VERSION) return false;
    const cut = text.length > LIMITS.logTextLength ? `${text.slice(0, LIMITS.logTextLength - 1)}…` : text;
    this.#send({ type: FrameType.LOG, stream: 0, requestId: requestId.slice(0, LIMITS.requestIdLength), level, text: cut, cutLines, cutBytes });
    return true;
  }

  /**
   * Asks the peer for the hop timestamps of a stream this side just opened (TIMING_ASK, right
   * behind its head in the same message). Returns false, sending nothing, at a version without
   * timing frames. The answer comes to `stream.ontiming`, before the head.
   */
  askTiming(stream: Stream): boolean {
    if (this.#closed || this.version < TIMING_FRAME_VERSION || !stream.opener) return false;
    this.#send({ type: FrameType.TIMING_ASK, stream: stream.id });
    return true;
  }

  /**
   * Sends a stream's hop timestamps (TIMING), on a stream whose opener asked for them; call it
   * right before `respond()`, so that the frame travels in the same message as the head.
   */
  sendTiming(stream: Stream, times: HostTimes): void {
    if (this.#closed || !stream.timingAsked || stream.opener) return;
    this.#send({ type: FrameType.TIMING, stream: stream.id, ...times });
  }

  /**
   * Calls `fn` once the frames queued so far have been handed to the channel (at the end of
   * this turn's flush; later when the channel is over its high-water mark). For timing: the
   * hot path registers nothing.
   */
  whenSent(fn: () => void): void {
    this.#sentWatchers.push(fn);
  }

  /** Sends a PING now and resolves with the round-trip time in ms when its PONG arrives. */
  ping(): Promise<number> {
    if (this.#closed) return Promise.reject(this.#closed);
    const nonce = (this.#nonce = (this.#nonce + 1) >>> 0);
    const sent = Date.now();
    this.#pings.set(nonce, sent);
    this.#send({ type: FrameType.PING, stream: 0, nonce }, true);
    return new Promise((resolve, reject) => this.#pingWaiters.set(nonce, { resolve, reject }));
  }

  /**
   * Ends the session: sends an ERROR frame when a code is given, closes the channel, and fails
   * every open stream with that code (or `PROTO_SESSION_CLOSED`).
   */
  close(code?: ErrorCode, message?: string): void {
    if (this.#closed) return;
    if (code) {
      try {
        this.#channel.send(encodeFrame({ type: FrameType.ERROR, stream: 0, code, message: (message ?? '').slice(0, 1024) }));
      } catch {
        // the channel is already gone; the peer learns from the close
      }
    }
    this.#shutdown(new DcdnError(code ?? 'PROTO_SESSION_CLOSED', message ?? 'session closed'), true);
  }

  #shutdown(err: DcdnError, closeChannel: boolean): void {
    if (this.#closed) return;
    this.#closed = err;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#helloTimer);
    this.#control = [];
    this.#controlBytes = 0;
    this.#data = [];
    this.#dataBytes = 0;
    for (const w of this.#writeWaiters.splice(0)) w.reject(err);
    this.#sentWatchers = [];
    for (const w of this.#pingWaiters.values()) w.reject(err);
    this.#pingWaiters.clear();
    for (const s of [...this.#streams.values()]) s.fail(err.code, err.message, false);
    this.#streams.clear();
    this.#rejectReady(err);
    if (closeChannel) this.#channel.close(err.code);
    this.onclose?.(err);
  }

  // --- sending -------------------------------------------------------------------------------

  #send(frame: Frame, control = false): void {
    if (this.#closed) return;
    const bytes = encodeFrame(frame);
    if (bytes.byteLength > this.#channel.maxMessageSize) {
      throw new DcdnError('PROTO_MESSAGE_TOO_LARGE', `frame of ${bytes.byteLength} bytes exceeds the channel's ${this.#channel.maxMessageSize}`);
    }
    this.stats.framesOut++;
    if (control) {
      this.#control.push(bytes);
      this.#controlBytes += bytes.byteLength;
      // Control frames ignore the high-water mark, so a peer that makes us answer (PINGs) while
      // not reading would grow this queue without bound: cut it off instead.
      if (this.#controlBytes + this.#dataBytes + this.#channel.bufferedAmount > this.#opts.maxOutboundBytes) {
        onNextTurn(() => this.close('PROTO_SLOW_PEER', `the peer is not reading: over ${this.#opts.maxOutboundBytes} bytes queued for it`));
        return;
      }
    } else {
      this.#data.push(bytes);
      this.#dataBytes += bytes.byteLength;
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      onNextTurn(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  #flush(): void {
    if (this.#closed || !this.#channel.isOpen) return;
    try {
      if (this.#control.length > 0) this.#sendBatch(this.#control, Infinity);
      this.#sendBatch(this.#data, this.#opts.highWaterMark);
      if (this.#sentWatchers.length > 0 && this.#data.length === 0) for (const fn of this.#sentWatchers.splice(0)) fn();
    } catch (err) {
      this.#shutdown(new DcdnError('PROTO_SESSION_CLOSED', `send failed: ${(err as Error).message}`), true);
      return;
    }
    this.#releaseWriters();
  }

  /** Sends queued frames, as many to a message as fit, while the channel is below `limit`. */
  #sendBatch(queue: Uint8Array[], limit: number): void {
    const max = this.#channel.maxMessageSize;
    let i = 0;
    while (i < queue.length && this.#channel.bufferedAmount < limit) {
      let size = queue[i]!.byteLength;
      let j = i + 1;
      while (j < queue.length && size + queue[j]!.byteLength <= max) size += queue[j++]!.byteLength;
      const message = concatFrames(queue.slice(i, j));
      this.#channel.send(message);
      this.stats.messagesOut++;
      this.stats.bytesOut += message.byteLength;
      if (queue === this.#data) this.#dataBytes -= size;
      else this.#controlBytes -= size;
      i = j;
    }
    queue.splice(0, i);
  }

  #writable(): boolean {
    return this.#dataBytes + this.#channel.bufferedAmount < this.#opts.highWaterMark;
  }

  #waitWritable(): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (this.#writable() && this.#writeWaiters.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.#writeWaiters.push({ resolve, reject }));
  }

  #releaseWriters(): void {
    // Wake writers one at a time in order while there is room, so streams share the channel.
    while (this.#writeWaiters.length > 0 && this.#writable()) {
      this.#writeWaiters.shift()!.resolve();
    }
  }

  // --- receiving -----------------------------------------------------------------------------

  #onMessage(data: Uint8Array): void {
    if (this.#closed) return;
    this.#lastReceived = Date.now();
    this.stats.messagesIn++;
    this.stats.bytesIn += data.byteLength;
    if (data.byteLength > this.#channel.maxMessageSize) {
      return this.close('PROTO_MESSAGE_TOO_LARGE', `message of ${data.byteLength} bytes`);
    }
    try {
      forEachFrame(data, (f) => this.#onFrame(f), (e) => this.#onInvalidFrame(e));
    } catch (err) {
      if (this.#closed) return;
      const code = errorCodeOf(err) ?? 'PROTO_DECODE';
      this.close(code, (err as Error).message);
    }
  }

  #onInvalidFrame(err: InvalidFrameError): void {
    this.stats.framesIn++;
    const stream = err.stream === undefined ? undefined : this.#streams.get(err.stream);
    if (stream) {
      this.stats.streamErrors++;
      stream.fail('PROTO_FRAME_INVALID', err.message, true);
    } else if (err.stream === undefined) {
      // A broken session-level frame: nothing on this channel can be trusted any more.
      this.close('PROTO_FRAME_INVALID', err.message);
    } else if (this.#isNewPeerStream(err.stream)) {
      // A head this side refused (too many headers, a URL past the limit...): the stream never
      // opened here, but the peer opened it and waits for an answer. Say no, with the reason,
      // rather than leave it waiting for its timeout; the id counts as used.
      this.stats.streamErrors++;
      this.#lastPeerId = err.stream;
      if (this.#earlyResets.delete(err.stream)) return;
      this.#send({ type: FrameType.RESET, stream: err.stream, code: 'PROTO_FRAME_INVALID', message: err.message.slice(0, 1024) }, true);
    } else {
      this.stats.unknownStreamFrames++;
    }
  }

  /** An id of the peer's parity above every one it opened so far: what its next head would use. */
  #isNewPeerStream(id: number): boolean {
    const peerParity = this.role === 'client' ? 0 : 1;
    return id % 2 === peerParity && id > this.#lastPeerId;
  }

  #onFrame(frame: Frame): void {
    if (this.#closed) return;
    this.stats.framesIn++;
    if (!this.#helloReceived && frame.type !== FrameType.HELLO) {
      return this.close('PROTO_VERSION', 'the first frame must be HELLO');
    }
    const kind = frameKind(frame.type);
    if (kind !== null && !this.#budgets.take(kind)) {
      const b = this.#budgets.budget(kind);
      return this.close('PROTO_RATE_LIMITED', `too many ${kind} frames: over ${b.perSecond}/s (burst ${b.burst})`);
    }
    switch (frame.type) {
      case FrameType.HELLO:
        if (this.#helloReceived) return this.close('PROTO_STREAM_STATE', 'HELLO sent twice');
        // A newer peer is fine: it speaks every older version too, and the session runs at ours.
        // Only a peer older than the oldest we still speak is refused.
        if (frame.version < MIN_PROTOCOL_VERSION) {
          return this.close('PROTO_VERSION', `peer speaks version ${frame.version}, this side ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`);
        }
        this.#helloReceived = true;
        this.version = Math.min(frame.version, PROTOCOL_VERSION);
        this.#peerWindow = frame.receiveWindow;
        this.peerAgent = frame.agent;
        clearTimeout(this.#helloTimer);
        this.#resolveReady();
        return;
      case FrameType.PING:
        this.#send({ type: FrameType.PONG, stream: 0, nonce: frame.nonce }, true);
        return;
      case FrameType.PONG: {
        const sent = this.#pings.get(frame.nonce);
        if (sent !== undefined) {
          this.#pings.delete(frame.nonce);
          this.rttMs = Date.now() - sent;
          const waiter = this.#pingWaiters.get(frame.nonce);
          this.#pingWaiters.delete(frame.nonce);
          waiter?.resolve(this.rttMs);
        }
        return;
      }
      case FrameType.ERROR: {
        const code = errorCodeOf(frame) ?? 'PROTO_SESSION_CLOSED';
        this.#shutdown(new DcdnError(code, `peer closed the session: ${frame.code} ${frame.message}`), true);
        return;
      }
      case FrameType.REQ_HEAD:
        return this.#onRequestHead(frame);
      case FrameType.TIMING_ASK:
      case FrameType.TIMING: {
        const stream = this.version >= TIMING_FRAME_VERSION ? this.#streams.get(frame.stream) : undefined;
        // An ask goes to a stream the peer opened, timestamps to one this side opened; anything
        // else (a late frame, a version that has none) is dropped like a frame for no stream.
        if (!stream || stream.opener !== (frame.type === FrameType.TIMING)) {
          this.stats.unknownStreamFrames++;
          return;
        }
        if (frame.type === FrameType.TIMING_ASK) stream.timingAsked = true;
        else stream.ontiming?.(frame);
        return;
      }
      case FrameType.LOG:
        // A version-1 peer has no business sending one; ignored like a frame for no stream.
        if (this.version < LOG_FRAME_VERSION) {
          this.stats.unknownStreamFrames++;
          return;
        }
        this.onlog?.(frame);
        return;
      default:
        return this.#route(frame);
    }
  }

  #onRequestHead(frame: Extract<Frame, { type: typeof FrameType.REQ_HEAD }>): void {
    const id = frame.stream;
    const peerParity = this.role === 'client' ? 0 : 1;
    if (id % 2 !== peerParity || id <= this.#lastPeerId) {
      // Reusing or forging an id: refuse that stream only.
      this.stats.streamErrors++;
      this.#send({ type: FrameType.RESET, stream: id, code: 'PROTO_STREAM_STATE', message: 'stream id not allowed' }, true);
      return;
    }
    this.#lastPeerId = id;
    if (this.#earlyResets.delete(id)) return;
    if (this.#incoming >= this.#opts.maxIncomingStreams || !this.onstream) {
      this.#send({ type: FrameType.RESET, stream: id, code: 'PROTO_TOO_MANY_STREAMS', message: 'over the concurrency limit' }, true);
      return;
    }
    const head = { method: frame.method, url: frame.url, headers: frame.headers, app: frame.app };
    const windows = { send: this.#peerWindow, receive: this.#opts.receiveWindow };
    const stream = new Stream(this.#streamApi, id, false, head, windows, frame.endStream);
    this.#streams.set(id, stream);
    this.#incoming++;
    this.onstream(stream);
  }

  #route(frame: Frame): void {
    const stream = this.#streams.get(frame.stream);
    if (stream) return stream.receive(frame);
    const ours = frame.stream % 2 === (this.role === 'client' ? 1 : 0);
    const seen = ours ? frame.stream < this.#nextLocalId : frame.stream <= this.#lastPeerId;
    if (!ours && !seen && frame.type === FrameType.RESET) {
      this.#earlyResets.add(frame.stream);
      if (this.#earlyResets.size > 256) this.#earlyResets.delete(this.#earlyResets.values().next().value!);
      return;
    }
    if (seen) this.stats.lateFrames++;
    else this.stats.unknownStreamFrames++;
  }

  /** Runs four times per ping interval so a silent peer is declared dead close to the timeout. */
  #tick(): void {
    const now = Date.now();
    if (now - this.#lastReceived > this.#opts.heartbeatTimeoutMs) {
      this.close('PROTO_HEARTBEAT_TIMEOUT', `no message from the peer for ${now - this.#lastReceived} ms`);
      return;
    }
    if (now - this.#lastPing < this.#opts.heartbeatIntervalMs) return;
    this.#lastPing = now;
    const nonce = (this.#nonce = (this.#nonce + 1) >>> 0);
    this.#pings.set(nonce, now);
    if (this.#pings.size > 16) {
      const oldest = this.#pings.keys().next().value!;
      this.#pings.delete(oldest);
      this.#pingWaiters.get(oldest)?.reject(new DcdnError('PROTO_HEARTBEAT_TIMEOUT', 'ping unanswered'));
      this.#pingWaiters.delete(oldest);
    }
    this.#send({ type: FrameType.PING, stream: 0, nonce }, true);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
