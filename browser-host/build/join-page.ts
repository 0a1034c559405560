/**
 * The volunteer join page's markup and style (`/join` on signaling); its script is join.ts,
 * served as `/join.js`. Self-contained: no fonts, images or scripts from elsewhere, so it works
 * on a network with no way out to the internet. Everything dynamic is filled in by the script
 * as text, never as HTML.
 */
export function joinPageHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light dark">
<title>Join dcdn as a volunteer</title>
<link rel="icon" href="data:,">
<style>
  :root {
    --bg: #f3f5f8; --card: #fff; --text: #15202b; --muted: #4f5b67; --line: #dde2e8;
    --accent: #1a5dcc; --accent-hover: #154ea9; --danger: #b42318; --danger-hover: #8f1c13;
    --ok-bg: #e7f5ec; --ok-text: #135230; --warn-bg: #fff3dc; --warn-text: #6e3b00; --bad-bg: #fdeceb; --bad-text: #8a1c15;
    --off-bg: #dfe4ea; --off-text: #4f5b67; --log-bg: #111a23; --log-text: #d5dde6; --log-time: #8ea2b6;
  }
  @media (prefers-color-scheme: dark) {
    :root {
      --bg: #0d1217; --card: #151c23; --text: #e5eaef; --muted: #a1adb9; --line: #29333d;
      --accent: #3b7cf0; --accent-hover: #5b92f4; --danger: #d63a2f; --danger-hover: #e25a50;
      --ok-bg: #12301f; --ok-text: #b7ebc9; --warn-bg: #3a2a0d; --warn-text: #f7d8a0; --bad-bg: #3b1512; --bad-text: #f8c4bf;
      --off-bg: #29333d; --off-text: #a1adb9; --log-bg: #0a0f14;
    }
  }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--text); font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; -webkit-text-size-adjust: 100%; }
  .top, main { max-width: 70rem; margin: 0 auto; padding-left: 1.25rem; padding-right: 1.25rem; }
  .top { display: flex; align-items: center; gap: .6rem; padding-top: 1.1rem; padding-bottom: 1.1rem; }
  .mark { width: 1.5rem; height: 1.5rem; border-radius: .4rem; background: linear-gradient(135deg, #1a5dcc, #0f9f85); flex: none; }
  .brand { font-weight: 700; font-size: 1.05rem; }
  .tag { color: var(--muted); font-size: .92rem; }
  main { display: grid; grid-template-columns: minmax(0, 1.05fr) minmax(0, 1fr); gap: 1.25rem; align-items: start; padding-bottom: 2.5rem; }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 1.6rem; box-shadow: 0 1px 2px rgb(16 24 40 / 5%), 0 6px 20px rgb(16 24 40 / 5%); min-width: 0; }
  h1 { font-size: clamp(1.45rem, 1.1rem + 1.3vw, 1.95rem); line-height: 1.2; letter-spacing: -.01em; margin: 0 0 .6rem; }
  h2 { font-size: 1.05rem; margin: 0 0 .85rem; }
  h2.log-title { margin-top: 1.4rem; }
  .lead { color: var(--muted); margin: 0 0 1.15rem; }
  .facts { list-style: none; margin: 0 0 1.35rem; padding: 0; display: grid; gap: .7rem; }
  .facts li { position: relative; padding-left: 1.6rem; }
  .facts li::before { content: ""; position: absolute; left: .15rem; top: .5rem; width: .6rem; height: .6rem; border-radius: 50%; background: var(--accent); }
  .invite { border-radius: 10px; padding: .75rem .95rem; margin: 0 0 1.2rem; background: var(--off-bg); color: var(--text); overflow-wrap: anywhere; }
  .invite[data-tone="ok"] { background: var(--ok-bg); color: var(--ok-text); }
  .invite[data-tone="warn"] { background: var(--warn-bg); color: var(--warn-text); }
  .invite[data-tone="problem"] { background: var(--bad-bg); color: var(--bad-text); font-weight: 600; }
  .invite p { margin: 0; }
  .invite p + p { margin-top: .2rem; font-size: .93rem; font-weight: 400; }
  .btn { display: block; width: 100%; min-height: 3.4rem; padding: .9rem 1.25rem; border: 0; border-radius: 12px; background: var(--accent); color: #fff; font: inherit; font-size: 1.2rem; font-weight: 650; cursor: pointer; transition: background-color .15s; }
  .btn:hover { background: var(--accent-hover); }
  .btn.leave { background: var(--danger); }
  .btn.leave:hover { background: var(--danger-hover); }
  .btn:focus-visible { outline: 3px solid var(--accent); outline-offset: 3px; }
  .btn:disabled { background: var(--off-bg); color: var(--off-text); cursor: not-allowed; }
  .summary { display: flex; align-items: baseline; gap: .55rem; margin: 1rem 0 0; font-weight: 550; }
  .summary::before { content: ""; flex: none; width: .7rem; height: .7rem; border-radius: 50%; background: #8793a0; transform: translateY(.05rem); }
  body[data-state="serving"] .summary::before { background: #16a34a; box-shadow: 0 0 0 4px rgb(22 163 74 / 20%); }
  body[data-state="joining"] .summary::before, body[data-state="waiting"] .summary::before, body[data-state="reconnecting"] .summary::before { background: #d97706; }
  body[data-state="blocked"] .summary::before { background: #dc2626; }
  .stats { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: .7rem; margin: 0; }
  .stats > div { border: 1px solid var(--line); border-radius: 10px; padding: .6rem .8rem; min-width: 0; }
  .stats > .wide { grid-column: 1 / -1; }
  dt { color: var(--muted); font-size: .76rem; font-weight: 650; letter-spacing: .06em; text-transform: uppercase; }
  dd { margin: .15rem 0 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
  dd ul { list-style: none; margin: 0; padding: 0; }
  .muted { color: var(--muted); }
  .log { list-style: none; margin: 0; padding: .75rem .95rem; min-height: 8.5rem; border-radius: 10px; background: var(--log-bg); color: var(--log-text); font: 12.5px/1.6 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
  .log time { color: var(--log-time); margin-right: .35rem; }
  .log:empty::before { content: "Nothing yet."; color: var(--log-time); }
  @media (max-width: 54rem) { main { grid-template-columns: minmax(0, 1fr); } }
  @media (max-width: 30rem) {
    .top, main { padding-left: .85rem; padding-right: .85rem; }
    .card { padding: 1.15rem; }
    .stats { grid-template-columns: minmax(0, 1fr); }
  }
</style>
</head>
<body data-state="checking">
<header class="top">
  <span class="mark" aria-hidden="true"></span><span class="brand">dcdn</span><span class="tag">volunteer host</span>
</header>
<main>
  <section class="card" aria-labelledby="title">
    <h1 id="title">Lend this browser tab to the network</h1>
    <p class="lead">When you join, this tab runs small web programs (handlers) written by other people and answers requests for them, for as long as it stays open.</p>
    <ul class="facts">
      <li><strong>Sandboxed.</strong> The handlers run isolated inside this tab. They cannot see your cookies, passwords, files or other tabs.</li>
      <li><strong>Visitors stay private.</strong> The visitors' cookies and passwords are never sent to this tab, nor the apps' secrets.</li>
      <li><strong>Light, but not free.</strong> It uses some of your CPU, memory and bandwidth while requests come in.</li>
      <li><strong>You stay in control.</strong> Nothing is installed. Press Leave or close this tab to stop at any time.</li>
    </ul>
    <div id="invite" class="invite" aria-live="polite">
      <p id="invite-text">Checking your invite…</p>
      <p id="invite-detail" hidden></p>
    </div>
    <button id="toggle" class="btn" type="button" aria-describedby="summary" disabled>Join</button>
    <p id="summary" class="summary" role="status" aria-live="polite">Checking your invite…</p>
  </section>
  <section class="card" aria-labelledby="status-title">
    <h2 id="status-title">Status</h2>
    <dl class="stats">
      <div class="wide"><dt>Connection</dt><dd id="s-connection">Not joined</dd></div>
      <div class="wide"><dt>Serving</dt><dd><ul id="s-ingresses"><li class="muted">–</li></ul></dd></div>
      <div><dt>Apps</dt><dd><ul id="s-apps"><li class="muted">–</li></ul></dd></div>
      <div><dt>This host</dt><dd id="s-host">–</dd></div>
      <div class="wide"><dt>Requests</dt><dd id="s-requests">–</dd></div>
      <div><dt>Traffic</dt><dd id="s-traffic">–</dd></div>
      <div><dt>Rate</dt><dd id="s-rate">–</dd></div>
    </dl>
    <h2 class="log-title" id="log-title">Recent activity</h2>
    <ol id="log" class="log" aria-labelledby="log-title"></ol>
  </section>
</main>
<noscript><p style="text-align:center">This page needs JavaScript to join.</p></noscript>
<script type="module" src="/join.js"></script>
</body>
</html>
`;
}
