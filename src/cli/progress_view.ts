/**
 * Progress for the command line, as an observer of `save()` (after ggcr's
 * `progress.go`): `save(entries, { onProgress: progress.listener })` reports
 * how far each layer has been read, and this view shows it. Images are
 * never wrapped, so what is saved cannot depend on whether progress is
 * shown. On a terminal it redraws a live view (per-layer bytes, total,
 * rate, ETA); elsewhere it prints one line per layer once it is written (a
 * counting pass and the write are one line, "read 2 times").
 *
 * Every number is in the bytes of the tarball's layer members: the total is
 * their sum, known before the first byte wherever the source knows the
 * sizes (a registry's gzip trailer, a docker archive's `layer.tar`, the blob
 * itself for compressed layers), and marked `≥` while some are still to be
 * learnt. A counting pass (the blob read once to learn its size) is shown
 * as such on its row, in the blob's bytes, and is not part of the total.
 *
 * @module
 */

import type { Image } from "../model/image.ts";
import { type ImageIndex, isImageIndex } from "../model/image_index.ts";
import { type WalkedIndex, walkIndex } from "../model/index_walk.ts";
import { describeLayer } from "../model/layer.ts";
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
   * Each layer member is its blob as stored (`layers: "compressed"`, or the
   * OCI format); else its uncompressed tar.
   * @default {false}
   */
  asStored?: boolean;
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

/**
 * How a save ended, for the view's last frame.
 *
 * @example
 * ```ts
 * import type { ProgressOutcome } from "./progress_view.ts";
 * const outcome: ProgressOutcome = "interrupted";
 * ```
 */
export type ProgressOutcome = "done" | "interrupted" | "failed";

interface LayerState {
  digest: string;
  /** The blob's size (a counting pass reads it). */
  blobSize: number;
  /** The member's size in the tarball; `undefined` until learnt. */
  size: number | undefined;
  label: string;
  /** What the row says: the phase under way, or how it ended. */
  state: "waiting" | ProgressUpdate["phase"] | ProgressOutcome;
  /** Bytes of the phase under way. */
  bytes: number;
  /** Member bytes written. */
  written: number;
  passes: number;
}

/** Most layer lines the live view shows; the rest are summed up. */
const MAX_LINES = 12;
/** The rate is averaged over this many milliseconds. */
const RATE_WINDOW = 5000;
/** Width of a row's state word ("interrupted"). */
const STATE_WIDTH = 11;

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
 * progress.finish("done");
 * ```
 */
export class Progress {
  #write: (text: string) => void;
  #tty: boolean;
  #asStored: boolean;
  #columns: () => number;
  #now: () => number;
  #interval: number;
  #layers = new Map<string, LayerState>();
  #samples: [number, number][] = [];
  #drawn = 0; // lines of the last live view
  #lastDraw = -Infinity;
  #printed = 0;
  #outcome: ProgressOutcome | undefined;

  /**
   * Creates an empty view.
   *
   * @param options where and how to show progress
   */
  constructor(options: ProgressOptions) {
    this.#write = options.write;
    this.#tty = options.tty ?? false;
    this.#asStored = options.asStored ?? false;
    this.#columns = options.columns ?? (() => 80);
    this.#now = options.now ?? (() => Date.now());
    this.#interval = options.interval ?? 100;
  }

  /** Member bytes written so far, over all layers. */
  get transferred(): number {
    let written = 0;
    for (const layer of this.#layers.values()) written += layer.written;
    return written;
  }

  /** The layer members' bytes, of those whose size is known. */
  get total(): number {
    let total = 0;
    for (const layer of this.#layers.values()) total += layer.size ?? 0;
    return total;
  }

  /** Whether every layer member's size is known (the total is exact). */
  get exact(): boolean {
    for (const layer of this.#layers.values()) {
      if (layer.size === undefined) return false;
    }
    return true;
  }

  /**
   * Registers an image's layers ahead of the save, for the total and to
   * name the image in the view (an index: every platform's, each named by
   * its platform). Reads manifests, and asks the source each layer's
   * uncompressed size where it knows it without reading the blob.
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
    const layers = (await image.manifest()).layers.filter((layer) =>
      !this.#layers.has(layer.digest)
    );
    const sizes = await Promise.all(
      layers.map(async (layer) =>
        this.#asStored
          ? layer.size
          // The same answer stage 4 gets (a source keeps what it learnt).
          : await (await describeLayer(image, layer)).uncompressedSize()
            .catch(() => undefined)
      ),
    );
    for (const [i, layer] of layers.entries()) {
      if (this.#layers.has(layer.digest)) continue;
      this.#layers.set(layer.digest, {
        digest: layer.digest,
        blobSize: layer.size,
        size: sizes[i],
        label,
        state: "waiting",
        bytes: 0,
        written: 0,
        passes: 0,
      });
    }
  }

  /** The listener to give `save()` as `onProgress`. */
  readonly listener: ProgressListener = (update) => this.#update(update);

  /**
   * Prints a line of its own (a retry notice): above the live view, which
   * is drawn again under it.
   */
  note(line: string): void {
    if (!this.#tty || !this.#drawn || this.#outcome) {
      return this.#write(line);
    }
    this.#write(`\x1b[${this.#drawn}F\x1b[0J${line}`);
    this.#drawn = 0;
    this.#draw();
  }

  /**
   * Draws the last live view, saying how the save ended (rows cut short say
   * `interrupted` or `failed`; no ETA); nothing is drawn after it.
   */
  finish(outcome: ProgressOutcome = "done"): void {
    if (this.#outcome) return;
    this.#outcome = outcome;
    for (const layer of this.#layers.values()) {
      if (layer.state === "counting" || layer.state === "writing") {
        layer.state = outcome === "done" ? "failed" : outcome;
      } else if (layer.state === "failed" && outcome === "interrupted") {
        layer.state = outcome; // cancelled by the interrupt
      }
    }
    if (this.#tty && this.#layers.size) {
      this.#draw();
      this.#drawn = 0;
    }
  }

  #update(update: ProgressUpdate): void {
    if (this.#outcome) return;
    let layer = this.#layers.get(update.digest);
    if (!layer) {
      layer = {
        digest: update.digest,
        blobSize: update.total ?? 0,
        size: undefined,
        label: update.name,
        state: "waiting",
        bytes: 0,
        written: 0,
        passes: 0,
      };
      this.#layers.set(update.digest, layer);
    }
    const starts = layer.state !== update.phase && update.state === "reading";
    if (starts) layer.passes++; // a new pass over this layer
    layer.bytes = update.complete;
    if (update.phase === "writing") {
      layer.written = update.complete;
      if (update.total !== undefined) layer.size = update.total;
      else if (update.state === "done") layer.size = update.complete;
    }
    layer.state = update.state === "reading"
      ? update.phase
      : update.state === "failed"
      ? "failed"
      : update.phase === "writing"
      ? "done"
      : "waiting"; // counted: waits for its write
    if (update.state === "done" && update.phase === "writing" && !this.#tty) {
      this.#print(layer);
    }
    // A row that starts or ends is drawn at once; bytes at most every
    // `interval`.
    this.#changed(starts || update.state !== "reading");
  }

  /**
   * Draws the live view again if it is due (called on a timer, so a stalled
   * read shows its rate falling instead of a frozen frame).
   */
  tick(): void {
    if (!this.#outcome && this.#drawn) this.#changed();
  }

  #print(layer: LayerState): void {
    this.#printed++;
    const times = layer.passes > 1 ? `, read ${layer.passes} times` : "";
    this.#write(
      `${short(layer.digest)} ${
        bytes(layer.size ?? layer.written)
      } (${layer.label}${times}) [${this.#printed}/${this.#layers.size}]\n`,
    );
  }

  #changed(force = false): void {
    if (!this.#tty) return;
    const now = this.#now();
    if (!force && now - this.#lastDraw < this.#interval) return;
    this.#draw();
  }

  #draw(): void {
    const now = this.#now();
    this.#lastDraw = now;
    const transferred = this.transferred;
    this.#samples.push([now, transferred]);
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
        layer.state !== "waiting" && layer.state !== "done"
      );
    for (const layer of shown) lines.push(this.#layerLine(layer, width));
    if (shown.length < all.length) {
      const done = all.filter((layer) => layer.state === "done").length;
      const waiting = all.filter((layer) => layer.state === "waiting").length;
      lines.push(`${done} layers done, ${waiting} waiting`);
    }
    lines.push(this.#totalLine(now, width, transferred));
    let text = this.#drawn ? `\x1b[${this.#drawn}F` : "";
    for (const line of lines) text += `\x1b[2K${line.slice(0, width - 1)}\n`;
    this.#drawn = lines.length;
    this.#write(text);
  }

  #layerLine(layer: LayerState, width: number): string {
    const w = barWidth(width);
    // A counting pass reads the blob: its row is in the blob's bytes.
    const [done, of] = layer.state === "counting"
      ? [layer.bytes, layer.blobSize]
      : [layer.written, layer.size];
    const size = `${bytes(done)}/${of === undefined ? "?" : bytes(of)}`;
    const reading = layer.state === "counting" || layer.state === "writing";
    const status = `${layer.state.padEnd(STATE_WIDTH)} ${
      reading ? bar(done, of ?? 0, w) : " ".repeat(w + 2)
    }`;
    return `${layer.digest.slice(7, 19)} ${status} ${size}  ${layer.label}`;
  }

  #totalLine(now: number, width: number, transferred: number): string {
    const [t0, b0] = this.#samples[0];
    const seconds = (now - t0) / 1000;
    const rate = seconds > 0 ? (transferred - b0) / seconds : 0;
    const total = this.total;
    const exact = this.exact;
    const left = Math.max(0, total - transferred);
    // While saving, an ETA (a lower bound while sizes are to be learnt);
    // at the end, how it ended and no ETA.
    const eta = this.#outcome
      ? ""
      : rate > 0 && (left > 0 || exact)
      ? `  ETA ${exact ? "" : "≥"}${duration(left / rate)}`
      : "  ETA --";
    const state = (this.#outcome ?? "saving").padEnd(STATE_WIDTH);
    return `total        ${state} ${bar(transferred, total, barWidth(width))} ${
      bytes(transferred)
    }/${exact ? "" : "≥"}${bytes(total)}  ${bytes(rate)}/s${eta}`;
  }
}

// The bar fills what the numbers leave of the line, 10 to 30 wide.
function barWidth(columns: number): number {
  return Math.max(10, Math.min(30, columns - 69));
}

// Nothing of nothing is an empty bar (a total still to be counted).
function bar(done: number, total: number, width: number): string {
  const filled = total > 0
    ? Math.min(width, Math.floor((done / total) * width))
    : 0;
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
