/**
 * Progress for the command line, as an observer of `save()` (after ggcr's
 * `progress.go`): `save(entries, { onProgress: progress.listener })` reports
 * how far each layer has been read, and this view shows it. Images are
 * never wrapped, so what is saved cannot depend on whether progress is
 * shown. On a terminal it redraws a live view (per-layer bytes, total,
 * rate, ETA); elsewhere it prints one line per layer once it is written (a
 * counting pass and the write are one line, "read 2 times").
 *
 * @module
 */

import type { Image } from "../model/image.ts";
import { type ImageIndex, isImageIndex } from "../model/image_index.ts";
import { type WalkedIndex, walkIndex } from "../model/index_walk.ts";
import { formatPlatform } from "../model/platform.ts";
import type { ProgressListener, ProgressUpdate } from "../save/progress.ts";

/**
 * Where and how progress is shown.
 *
 * @example
 * ```ts
 * import type { ProgressOptions } from "./progress_view.ts";
 * const options: ProgressOptions = {
 *   write: (text) => console.error(text),
 *   tty: false,
 * };
 * ```
 */
export interface ProgressOptions {
  /** Writes text (stderr). */
  write: (text: string) => void;
  /**
   * Redraw a live view (a terminal) instead of printing one line per layer.
   * @default {false}
   */
  tty?: boolean;
  /**
   * The terminal width.
   * @default {() => 80}
   */
  columns?: () => number;
  /**
   * The clock, in milliseconds.
   * @default {() => Date.now()}
   */
  now?: () => number;
  /**
   * Least time between two redraws, in milliseconds.
   * @default {100}
   */
  interval?: number;
}

interface LayerState {
  digest: string;
  size: number;
  label: string;
  /** Bytes of the current pass so far. */
  bytes: number;
  /** Bytes the current pass reads; the blob size before any pass. */
  passTotal: number;
  /** Bytes of the passes already finished. */
  doneTotal: number;
  passes: number;
  state: "waiting" | "reading" | "done" | "failed";
}

/** Most layer lines the live view shows; the rest are summed up. */
const MAX_LINES = 12;
/** The rate is averaged over this many milliseconds. */
const RATE_WINDOW = 5000;

/**
 * Shows the progress `save()` reports through {@linkcode Progress.listener}.
 *
 * @example Show progress while saving
 * ```ts
 * import { Progress } from "./progress_view.ts";
 * import { save } from "../save/save.ts";
 * import type { Image } from "../model/image.ts";
 * declare const image: Image;
 * const progress = new Progress({ write: (s) => console.error(s), tty: false });
 * await progress.expect(image, "app:v1");
 * await save([["app:v1", image]], { onProgress: progress.listener })
 *   .pipeTo(new WritableStream());
 * progress.finish();
 * ```
 */
export class Progress {
  #write: (text: string) => void;
  #tty: boolean;
  #columns: () => number;
  #now: () => number;
  #interval: number;
  #layers = new Map<string, LayerState>();
  #transferred = 0;
  #samples: [number, number][] = [];
  #drawn = 0; // lines of the last live view
  #lastDraw = -Infinity;
  #printed = 0;
  #finished = false;

  /**
   * Creates an empty view.
   *
   * @param options where and how to show progress
   */
  constructor(options: ProgressOptions) {
    this.#write = options.write;
    this.#tty = options.tty ?? false;
    this.#columns = options.columns ?? (() => 80);
    this.#now = options.now ?? (() => Date.now());
    this.#interval = options.interval ?? 100;
  }

  /** Bytes read so far, over all layers and passes. */
  get transferred(): number {
    return this.#transferred;
  }

  /**
   * Bytes expected: each distinct layer once (its blob size until a pass
   * says more), plus each further pass over it (a counting pass).
   */
  get total(): number {
    let total = 0;
    for (const layer of this.#layers.values()) {
      total += layer.doneTotal + layer.passTotal;
    }
    return total;
  }

  /**
   * Registers an image's layers ahead of the save, for the total and to
   * name the image in the view (an index: every platform's, each named by
   * its platform). Reads only manifests.
   */
  async expect(image: Image | ImageIndex, label: string): Promise<void> {
    if (!isImageIndex(image)) return await this.#expectImage(image, label);
    // Each platform's layers, named by the platform (by the first path to
    // it): each index and image once, however many entries name it.
    const walked = await walkIndex(image, { what: `index of ${label}` });
    const seen = new Set<object>();
    const visit = async (index: WalkedIndex, label: string) => {
      for (const entry of index.entries) {
        const child = entry.kind === "index" ? entry.index : entry.image;
        if (!child || seen.has(child)) continue;
        seen.add(child);
        const named = `${label} ${formatPlatform(entry.descriptor.platform)}`;
        if (entry.kind === "index") await visit(entry.index, named);
        else await this.#expectImage(entry.image!, named);
      }
    };
    await visit(walked, label);
  }

  async #expectImage(image: Image, label: string): Promise<void> {
    for (const layer of (await image.manifest()).layers) {
      if (this.#layers.has(layer.digest)) continue;
      this.#layers.set(layer.digest, {
        digest: layer.digest,
        size: layer.size,
        label,
        bytes: 0,
        passTotal: layer.size,
        doneTotal: 0,
        passes: 0,
        state: "waiting",
      });
    }
  }

  /** The listener to give `save()` as `onProgress`. */
  readonly listener: ProgressListener = (update) => this.#update(update);

  /** Draws the final live view; nothing is drawn after it. */
  finish(): void {
    if (this.#finished) return;
    if (this.#tty && this.#layers.size) {
      this.#draw(true);
      this.#drawn = 0;
    }
    this.#finished = true;
  }

  #update(update: ProgressUpdate): void {
    if (this.#finished) return;
    let layer = this.#layers.get(update.digest);
    if (!layer) {
      layer = {
        digest: update.digest,
        size: update.total,
        label: update.name,
        bytes: 0,
        passTotal: update.total,
        doneTotal: 0,
        passes: 0,
        state: "waiting",
      };
      this.#layers.set(update.digest, layer);
    }
    if (layer.state !== "reading" && update.state === "reading") {
      // A new pass over this layer.
      if (layer.state === "done") layer.doneTotal += layer.passTotal;
      layer.passes++;
      layer.bytes = 0;
      layer.passTotal = update.total;
    }
    this.#transferred += update.complete - layer.bytes;
    layer.bytes = update.complete;
    layer.state = update.state;
    if (update.state === "done" && update.phase === "writing" && !this.#tty) {
      this.#print(layer);
    }
    this.#changed(update.state !== "reading");
  }

  #print(layer: LayerState): void {
    this.#printed++;
    const times = layer.passes > 1 ? `, read ${layer.passes} times` : "";
    this.#write(
      `${short(layer.digest)} ${
        bytes(layer.size)
      } (${layer.label}${times}) [${this.#printed}/${this.#layers.size}]\n`,
    );
  }

  #changed(force = false): void {
    if (!this.#tty) return;
    const now = this.#now();
    if (!force && now - this.#lastDraw < this.#interval) return;
    this.#draw(false);
  }

  #draw(final: boolean): void {
    const now = this.#now();
    this.#lastDraw = now;
    this.#samples.push([now, this.#transferred]);
    while (
      this.#samples.length > 2 && now - this.#samples[1][0] >= RATE_WINDOW
    ) {
      this.#samples.shift();
    }
    const width = Math.max(40, this.#columns());
    const lines: string[] = [];
    const all = [...this.#layers.values()];
    const shown = all.length <= MAX_LINES
      ? all
      : all.filter((layer) =>
        layer.state === "reading" || layer.state === "failed"
      );
    for (const layer of shown) lines.push(this.#layerLine(layer, width));
    if (shown.length < all.length) {
      const done = all.filter((layer) => layer.state === "done").length;
      const waiting = all.filter((layer) => layer.state === "waiting").length;
      lines.push(`${done} layers done, ${waiting} waiting`);
    }
    lines.push(this.#totalLine(now, width, final));
    let text = this.#drawn ? `\x1b[${this.#drawn}F` : "";
    for (const line of lines) text += `\x1b[2K${line.slice(0, width - 1)}\n`;
    this.#drawn = lines.length;
    this.#write(text);
  }

  #layerLine(layer: LayerState, width: number): string {
    const size = `${bytes(layer.bytes)}/${bytes(layer.passTotal)}`;
    const w = barWidth(width);
    const status = layer.state === "reading"
      ? bar(layer.bytes, layer.passTotal, w)
      : layer.state.padEnd(w + 2);
    return `${layer.digest.slice(7, 19)} ${status} ${size}  ${layer.label}`;
  }

  #totalLine(now: number, width: number, final: boolean): string {
    const [t0, b0] = this.#samples[0];
    const seconds = (now - t0) / 1000;
    const rate = seconds > 0 ? (this.#transferred - b0) / seconds : 0;
    const total = this.total;
    const left = Math.max(0, total - this.#transferred);
    const eta = final
      ? "done"
      : rate > 0
      ? `ETA ${duration(left / rate)}`
      : "ETA --";
    return `total        ${bar(this.#transferred, total, barWidth(width))} ${
      bytes(this.#transferred)
    }/${bytes(total)}  ${bytes(rate)}/s  ${eta}`;
  }
}

// The bar fills what the numbers leave of the line, 10 to 30 wide.
function barWidth(columns: number): number {
  return Math.max(10, Math.min(30, columns - 57));
}

function bar(done: number, total: number, width: number): string {
  const filled = total > 0
    ? Math.min(width, Math.floor((done / total) * width))
    : width;
  return `[${"=".repeat(filled)}${" ".repeat(width - filled)}]`;
}

function short(digest: string): string {
  return digest.slice(0, 19);
}

/**
 * A byte count in B, KiB, MiB or GiB, one decimal.
 *
 * @example
 * ```ts
 * import { bytes } from "./progress_view.ts";
 * bytes(1536); // "1.5 KiB"
 * ```
 */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[unit]}`;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) {
    return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  }
  return `${Math.floor(s / 3600)}h${
    String(Math.floor((s % 3600) / 60)).padStart(2, "0")
  }m`;
}
