/**
 * Progress for the command line, added as a wrapper (after ggcr's
 * `progress.go`): `Progress.track()` wraps an image so that each layer stream
 * it opens is counted as `save()` reads it; the pipeline never sees progress.
 * On a terminal it redraws a live view (per-layer bytes, total, rate, ETA);
 * elsewhere it prints one line per layer, once the layer has been read (a
 * layer read twice in a row, a counting pass then the write, is one line).
 *
 * @module
 */

import type { Descriptor, Image } from "./image.ts";

/**
 * Where and how progress is shown.
 *
 * @example
 * ```ts
 * import type { ProgressOptions } from "./cli_progress.ts";
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
  bytes: number;
  passes: number;
  state: "waiting" | "reading" | "done" | "failed";
}

/** Most layer lines the live view shows; the rest are summed up. */
const MAX_LINES = 12;
/** The rate is averaged over this many milliseconds. */
const RATE_WINDOW = 5000;

/**
 * Counts layer bytes read through tracked images and shows them.
 *
 * @example Show progress while saving
 * ```ts
 * import { Progress } from "./cli_progress.ts";
 * import { save } from "./save.ts";
 * import type { Image } from "./image.ts";
 * declare const image: Image;
 * const progress = new Progress({ write: (s) => console.error(s), tty: false });
 * const tracked = await progress.track(image, "app:v1");
 * await save([["app:v1", tracked]]).pipeTo(new WritableStream());
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
  #total = 0;
  #samples: [number, number][] = [];
  #drawn = 0; // lines of the last live view
  #lastDraw = -Infinity;
  #printed = 0;
  #pending: LayerState | undefined; // read, its line not printed yet

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
   * Bytes expected: each distinct layer blob once, plus again for each
   * further time it is opened (a counting pass).
   */
  get total(): number {
    return this.#total;
  }

  /**
   * Registers the image's layers (for the total) and returns an image whose
   * `openLayer` streams are counted. `label` names the image in the view.
   */
  async track(image: Image, label: string): Promise<Image> {
    const manifest = await image.manifest();
    for (const layer of manifest.layers) this.#layer(layer, label);
    const tracked: Image = {
      rawManifest: () => image.rawManifest(),
      manifest: () => image.manifest(),
      rawConfig: () => image.rawConfig(),
      openLayer: async (layer) =>
        this.#count(await image.openLayer(layer), this.#layer(layer, label)),
    };
    if (image.uncompressedSize) {
      tracked.uncompressedSize = (layer) => image.uncompressedSize!(layer);
    }
    return tracked;
  }

  /** Prints what is pending, or draws the final live view. */
  finish(): void {
    this.#flush();
    if (this.#tty && this.#layers.size) {
      this.#draw(true);
      this.#drawn = 0;
    }
  }

  #layer(layer: Descriptor, label: string): LayerState {
    let state = this.#layers.get(layer.digest);
    if (!state) {
      state = {
        digest: layer.digest,
        size: layer.size,
        label,
        bytes: 0,
        passes: 0,
        state: "waiting",
      };
      this.#layers.set(layer.digest, state);
      this.#total += layer.size;
    }
    return state;
  }

  #count(
    stream: ReadableStream<Uint8Array>,
    layer: LayerState,
  ): ReadableStream<Uint8Array> {
    if (this.#pending !== layer) this.#flush();
    layer.passes++;
    if (layer.passes > 1) this.#total += layer.size;
    layer.bytes = 0;
    layer.state = "reading";
    this.#changed();
    const reader = stream.getReader();
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (error) {
          layer.state = "failed";
          this.#changed(true);
          throw error;
        }
        if (next.done) {
          layer.state = "done";
          this.#done(layer);
          controller.close();
          return;
        }
        layer.bytes += next.value.byteLength;
        this.#transferred += next.value.byteLength;
        this.#changed();
        controller.enqueue(next.value);
      },
      cancel: (reason) => {
        if (layer.state === "reading") layer.state = "failed";
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 });
  }

  #done(layer: LayerState): void {
    if (this.#tty) return this.#changed(true);
    // Held until another layer is opened: it may be read again first.
    if (this.#pending !== layer) this.#flush();
    this.#pending = layer;
  }

  #flush(): void {
    const layer = this.#pending;
    this.#pending = undefined;
    if (!layer || this.#tty) return;
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
    const size = `${bytes(layer.bytes)}/${bytes(layer.size)}`;
    const w = barWidth(width);
    const status = layer.state === "reading"
      ? bar(layer.bytes, layer.size, w)
      : layer.state.padEnd(w + 2);
    return `${layer.digest.slice(7, 19)} ${status} ${size}  ${layer.label}`;
  }

  #totalLine(now: number, width: number, final: boolean): string {
    const [t0, b0] = this.#samples[0];
    const seconds = (now - t0) / 1000;
    const rate = seconds > 0 ? (this.#transferred - b0) / seconds : 0;
    const left = Math.max(0, this.#total - this.#transferred);
    const eta = final
      ? "done"
      : rate > 0
      ? `ETA ${duration(left / rate)}`
      : "ETA --";
    return `total        ${
      bar(this.#transferred, this.#total, barWidth(width))
    } ${bytes(this.#transferred)}/${bytes(this.#total)}  ${
      bytes(rate)
    }/s  ${eta}`;
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
 * import { bytes } from "./cli_progress.ts";
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
