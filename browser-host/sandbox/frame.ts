/**
 * The sandboxed iframe that owns an app's worker.
 *
 * `sandbox="allow-scripts"` without `allow-same-origin` gives the frame an opaque origin of its
 * own (https://html.spec.whatwg.org/multipage/browsers.html#sandboxed-origin-browsing-context-flag),
 * so neither it nor its worker can touch the host page, its storage, or another app's frame;
 * with Chromium's IsolateSandboxedIframes it also runs in another process than the page. The
 * document comes from `srcdoc`, so it needs no server route.
 *
 * The worker is started from a data: URL. Measured in Chromium 156: a worker from a blob: URL
 * minted in the opaque-origin frame is not a secure context (no `crypto.subtle`, no
 * `crypto.randomUUID`), and a module worker from such a blob fails to load at all; a data: URL
 * worker is secure and gets its own fresh opaque origin.
 *
 * The bootstrap only starts the worker, hands it the app's port, and answers pings on a control
 * port: that the frame answers while the worker does not tells a blocked worker from a crashed
 * process. Messages the worker posts to the frame are never read.
 */
import type { InitMessage } from './messages.ts';

const BOOTSTRAP = `<!doctype html><meta charset="utf-8"><script>
"use strict";
addEventListener("message", function boot(event) {
  var data = event.data;
  if (event.source !== parent || !data || data.t !== "dcdn-sandbox-boot" || event.ports.length !== 2) return;
  removeEventListener("message", boot);
  var control = event.ports[0];
  var worker = new Worker("data:text/javascript;charset=utf-8," + encodeURIComponent(data.runtime), { type: "module", name: data.name });
  worker.onerror = function (e) { control.postMessage({ t: "worker-error", message: String(e.message || "the worker failed to start") }); };
  control.onmessage = function (e) { if (e.data && e.data.t === "ping") control.postMessage({ t: "pong", n: e.data.n }); };
  worker.postMessage(data.init, [event.ports[1]]);
});
</script>`;

export interface OpenFrameOptions {
  /** The bundled worker runtime (worker-runtime.ts). */
  runtime: string;
  init: InitMessage;
  /** Shown as the worker's and the frame's name in DevTools. */
  name: string;
  /** Where the iframe is attached; default `document.body`. */
  container?: Node;
}

/** A running frame: the port to its worker, and the control port to the frame itself. */
export interface SandboxFrame {
  /** To and from the app's worker. Untrusted once the app has loaded. */
  readonly port: MessagePort;
  /** To and from the bootstrap: pings, and errors of the worker. */
  readonly control: MessagePort;
  /** Removes the iframe, which ends its worker however busy it is. Idempotent. */
  dispose(): void;
}

/**
 * Creates the iframe and, once its document has loaded, starts the worker in it. Returns at once:
 * messages posted on `port` before then wait in the port, and `dispose()` works at any time.
 */
export function openFrame(options: OpenFrameOptions): SandboxFrame {
  const iframe = document.createElement('iframe');
  iframe.setAttribute('sandbox', 'allow-scripts');
  iframe.name = options.name;
  iframe.title = `dcdn sandbox ${options.name}`;
  // Out of sight but not display:none, which lets Chromium throttle the frame as hidden.
  iframe.style.cssText = 'position:fixed;width:1px;height:1px;left:-10px;top:-10px;border:0;opacity:0;pointer-events:none';
  iframe.srcdoc = BOOTSTRAP;
  const control = new MessageChannel();
  const app = new MessageChannel();
  iframe.addEventListener(
    'load',
    () => {
      // An opaque origin can only be addressed as '*'; only our bootstrap runs in the frame.
      const boot = { t: 'dcdn-sandbox-boot', runtime: options.runtime, init: options.init, name: options.name };
      iframe.contentWindow?.postMessage(boot, '*', [control.port2, app.port2]);
    },
    { once: true },
  );
  (options.container ?? document.body).appendChild(iframe);
  return {
    port: app.port1,
    control: control.port1,
    dispose() {
      iframe.remove();
      control.port1.close();
      app.port1.close();
    },
  };
}
