/** A hand-written SVG of a run: grouped horizontal bars, one panel per question. */
import type { ChannelFigures, HttpFigures } from './report.ts';
import { SUMMARY_MESSAGE_SIZE } from './report.ts';
import { WATERFALL_SEGMENTS } from '../protocol/index.ts';
import type { WaterfallFigures, WaterfallResults } from './waterfall.ts';

interface Bar {
  series: string;
  value: number | null;
}
interface Group {
  label: string;
  bars: Bar[];
}
interface Panel {
  title: string;
  unit: string;
  groups: Group[];
}

const WIDTH = 980;
const LABEL_W = 250;
const BAR_H = 14;
const GAP = 10;
const COLORS = ['#2f6db5', '#f28e2b', '#59a14f', '#b07aa1'];

/** Ten colours for the waterfall's segments: Node side blue-ish, channel grey, page and sandbox warm. */
const SEGMENT_COLORS = ['#1f4e8c', '#5b8fd1', '#9a9a9a', '#f6b26b', '#e15759', '#59a14f', '#ff9da7', '#f28e2b', '#c7c7c7', '#76b7e5'];
const WATERFALL_LABELS: Record<string, string> = { werift: 'dcdn werift, 1 tab', 'node-datachannel': 'dcdn node-datachannel, 1 tab', websocket: 'dcdn WebSocket, 1 tab' };

export function renderSvg(title: string, subtitle: string, channel?: ChannelFigures, http?: Record<string, HttpFigures>, waterfall?: WaterfallResults): string {
  const panels: Panel[] = [];
  if (http) {
    const live = Object.values(http).filter((h) => !h.skipped);
    panels.push({
      title: 'Hello world, requests per second',
      unit: 'req/s',
      groups: live.map((h) => ({ label: h.label, bars: [{ series: '50 connections', value: h.c50Rps }, { series: '1 connection', value: h.c1Rps }] })),
    });
    panels.push({
      title: '10 MiB through HTTP, MB/s',
      unit: 'MB/s',
      groups: live.map((h) => ({ label: h.label, bars: [{ series: 'download', value: h.downloadMbps }, { series: 'upload', value: h.uploadMbps }] })),
    });
  }
  if (channel) {
    const size = String(SUMMARY_MESSAGE_SIZE);
    const names = { werift: 'werift data channel', 'node-datachannel': 'node-datachannel data channel', websocket: 'WebSocket' } as const;
    const groups: Group[] = Object.entries(channel.transports)
      .filter(([, t]) => !t.skipped)
      .map(([k, t]) => ({ label: names[k as keyof typeof names], bars: [{ series: 'Node → tab', value: t.bulk[size]?.toTabMbps ?? null }, { series: 'tab → Node', value: t.bulk[size]?.toNodeMbps ?? null }] }));
    groups.push({ label: 'Chromium tab → tab (ceiling)', bars: [{ series: 'tab → tab', value: channel.chromium.bulkMbps[size] ?? null }] });
    panels.push({ title: `Channel level, one tab, ${Number(size) / 1024} KiB messages, MB/s`, unit: 'MB/s', groups });
    // Round trips, when the run measured the 64 KiB one too (older runs have only the small frame).
    const rttGroups: Group[] = Object.entries(channel.transports)
      .filter(([, t]) => !t.skipped)
      .map(([k, t]) => ({ label: names[k as keyof typeof names], bars: [{ series: 'small frame', value: t.rttP50Ms }, { series: '64 KiB', value: t.rtt64kP50Ms ?? null }] }));
    rttGroups.push({ label: 'Chromium tab → tab', bars: [{ series: 'small frame', value: channel.chromium.rttP50Ms }, { series: '64 KiB', value: channel.chromium.rtt64kP50Ms ?? null }] });
    const has64k = rttGroups.some((g) => g.bars[1]!.value !== null);
    panels.push({
      title: has64k ? 'Channel level, round trip p50, ms (a ~100-byte frame; one 64 KiB message)' : 'Channel level, round trip p50 of a ~100-byte frame, ms',
      unit: 'ms',
      groups: has64k ? rttGroups : rttGroups.map((g) => ({ ...g, bars: g.bars.slice(0, 1) })),
    });
  }

  const parts: string[] = [];
  let y = 80;
  if (waterfall) y = renderWaterfall(parts, y, waterfall);
  for (const panel of panels) {
    const series = [...new Set(panel.groups.flatMap((g) => g.bars.map((b) => b.series)))];
    const max = Math.max(1, ...panel.groups.flatMap((g) => g.bars.map((b) => b.value ?? 0)));
    const scale = (WIDTH - LABEL_W - 90) / max;
    parts.push(`<text x="20" y="${y}" class="h">${esc(panel.title)}</text>`);
    series.forEach((s, i) => {
      const x = WIDTH - 20 - (series.length - i) * 130;
      parts.push(`<rect x="${x}" y="${y - 10}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${x + 14}" y="${y}" class="l">${esc(s)}</text>`);
    });
    y += 14;
    for (const group of panel.groups) {
      const h = group.bars.length * BAR_H;
      parts.push(`<text x="${LABEL_W - 8}" y="${y + h / 2 + 4}" class="g" text-anchor="end">${esc(group.label)}</text>`);
      group.bars.forEach((bar) => {
        const i = series.indexOf(bar.series);
        const w = Math.max(0, (bar.value ?? 0) * scale);
        parts.push(`<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H - 2}" fill="${COLORS[i % COLORS.length]}"/>`);
        parts.push(`<text x="${(LABEL_W + w + 4).toFixed(1)}" y="${y + BAR_H - 4}" class="v">${bar.value === null ? 'n/a' : fmt(bar.value)}</text>`);
        y += BAR_H;
      });
      y += GAP;
    }
    y += 30;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="system-ui, sans-serif">
<style>.t{font-size:18px;font-weight:600}.s{font-size:12px;fill:#555}.h{font-size:14px;font-weight:600}.g{font-size:12px}.l{font-size:11px}.v{font-size:11px;fill:#333}</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="20" y="26" class="t">${esc(title)}</text>
<text x="20" y="44" class="s">${esc(subtitle)}</text>
${parts.join('\n')}
</svg>
`;
}

/** The waterfall panel: one stacked bar per transport, a segment per hop, medians in µs. */
function renderWaterfall(parts: string[], top: number, w: WaterfallResults): number {
  const rows = Object.entries(w).filter((e): e is [string, WaterfallFigures] => !('skipped' in e[1]));
  if (rows.length === 0) return top;
  let y = top;
  const width = (f: WaterfallFigures) => WATERFALL_SEGMENTS.reduce((n, s) => n + Math.max(0, f.segmentsUs[s] || 0), 0);
  const max = Math.max(1, ...rows.map(([, f]) => width(f)));
  const scale = (WIDTH - LABEL_W - 90) / max;
  parts.push(`<text x="20" y="${y}" class="h">Where a hello world's time goes at 1 connection: median µs per hop (stacked)</text>`);
  y += 14;
  for (const [name, f] of rows) {
    parts.push(`<text x="${LABEL_W - 8}" y="${y + 14}" class="g" text-anchor="end">${esc(WATERFALL_LABELS[name] ?? name)}</text>`);
    let x = LABEL_W;
    WATERFALL_SEGMENTS.forEach((s, i) => {
      const seg = Math.max(0, f.segmentsUs[s] || 0) * scale;
      parts.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${seg.toFixed(1)}" height="20" fill="${SEGMENT_COLORS[i]}"><title>${s}: ${fmt(f.segmentsUs[s] || 0)} µs</title></rect>`);
      x += seg;
    });
    parts.push(`<text x="${(x + 4).toFixed(1)}" y="${y + 14}" class="v">${fmt(width(f))} µs</text>`);
    y += 20 + GAP;
  }
  // The legend, five to a line.
  WATERFALL_SEGMENTS.forEach((s, i) => {
    const x = LABEL_W + (i % 5) * 140;
    const ly = y + Math.floor(i / 5) * 16;
    parts.push(`<rect x="${x}" y="${ly}" width="10" height="10" fill="${SEGMENT_COLORS[i]}"/><text x="${x + 14}" y="${ly + 9}" class="l">${esc(s)}</text>`);
  });
  return y + 2 * 16 + 40;
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
