/**
 * A JSON reader and writer that matches Python 3's `json.loads` and
 * `json.dumps(value, sort_keys=True)` byte for byte.
 *
 * Image configs are hashed, so re-serialising one must give exactly the bytes
 * a Python tool would write. `JSON.parse` loses that: it turns `1.0` into `1`,
 * rounds big integers, sorts keys by UTF-16 code unit and treats `__proto__`
 * specially. This module keeps numbers as their lexeme and writes them the way
 * Python prints its ints and floats.
 *
 * @example Normalise a config the way Python would
 * ```ts
 * import assert from "node:assert/strict";
 * import { dumpJson, parseJson } from "./json.ts";
 *
 * const text = '{"b":1.0,"a":[1e3,"\u00e9"]}';
 * assert.equal(dumpJson(parseJson(text)), '{"a": [1000.0, "\\u00e9"], "b": 1.0}');
 * ```
 *
 * @module
 */

import { DockerSaveError } from "./errors.ts";

// A JSON number lexeme, or one of the float names Python's json module accepts.
const NUMBER_RE =
  /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|NaN|-?Infinity)$/;
// The same grammar, matched in place while parsing.
const NUMBER_AT_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?/y;
// Python's C decoder fails at about 1000 levels; failing early keeps our own
// recursion (here and in `dumpJson`) far from the engine's stack limit.
const MAX_DEPTH = 1000;
// Only the four JSON whitespace characters, as in Python.
const SPACE_RE = /[ \t\n\r]*/y;

/**
 * A number read from JSON, kept as its exact text so that integers of any size
 * survive and `1.0` stays a float, as in Python.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonNumber } from "./json.ts";
 *
 * assert.equal(new JsonNumber("12345678901234567890").isFloat, false);
 * assert.equal(new JsonNumber("1.0").isFloat, true);
 * assert.equal(new JsonNumber("NaN").isFloat, true);
 * ```
 */
export class JsonNumber {
  /** The lexeme as written in the JSON text, e.g. `"-0"`, `"1e3"`, `"NaN"`. */
  readonly text: string;
  /** Whether Python reads it as a float (it has `.`, `e` or `E`, or is NaN/Infinity). */
  readonly isFloat: boolean;

  /**
   * @param text a JSON number lexeme, or `NaN`, `Infinity`, `-Infinity`
   * @throws {TypeError} if `text` is not one of those
   */
  constructor(text: string) {
    if (!NUMBER_RE.test(text)) {
      throw new TypeError(`Cannot make a JSON number from "${text}"`);
    }
    this.text = text;
    this.isFloat = !/^-?\d+$/.test(text);
  }
}

/**
 * A parsed JSON value. Objects from {@linkcode parseJson} have a null
 * prototype; plain JS numbers are accepted by {@linkcode dumpJson} too.
 *
 * @example
 * ```ts
 * import type { JsonValue } from "./json.ts";
 * import { JsonNumber } from "./json.ts";
 *
 * const value: JsonValue = { n: new JsonNumber("1.0"), list: [1, "a", null] };
 * ```
 */
export type JsonValue =
  | null
  | boolean
  | string
  | number
  | JsonNumber
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A JSON object as {@linkcode parseJson} makes it. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * Whether a parsed JSON value is an object (not an array, number or null).
 *
 * @example
 * ```ts
 * import { isJsonObject, parseJson } from "./json.ts";
 * isJsonObject(parseJson("{}")); // true
 * isJsonObject(parseJson("[]")); // false
 * ```
 */
export function isJsonObject(
  value: JsonValue | undefined,
): value is JsonObject {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) && !(value instanceof JsonNumber);
}

/**
 * Parse JSON text like Python's `json.loads`: strict JSON plus `NaN`,
 * `Infinity` and `-Infinity`. Numbers become {@linkcode JsonNumber}s, objects
 * have a null prototype, and for duplicate keys the last value wins.
 *
 * @param text the JSON text (a leading BOM is rejected, as in Python)
 * @returns the parsed value
 * @throws {DockerSaveError} `BAD_CONFIG` if the text is not valid JSON
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonNumber, parseJson } from "./json.ts";
 *
 * const value = parseJson('{"__proto__": 1}') as Record<string, unknown>;
 * assert.ok(value["__proto__"] instanceof JsonNumber);
 * assert.throws(() => parseJson("[1,]"), { code: "BAD_CONFIG" });
 * ```
 */
export function parseJson(text: string): JsonValue {
  const parser = new Parser(text);
  if (text.charCodeAt(0) === 0xfeff) parser.fail("Unexpected UTF-8 BOM");
  parser.skipSpace();
  const value = parser.value(0);
  parser.skipSpace();
  if (parser.pos < text.length) parser.fail("Extra data");
  return value;
}

/** A recursive-descent parser; every step is linear in what it consumes. */
class Parser {
  pos = 0;

  constructor(readonly text: string) {}

  // Reasons and positions follow Python's JSONDecodeError messages.
  fail(reason: string, at = this.pos): never {
    throw new DockerSaveError(
      "BAD_CONFIG",
      `Cannot parse JSON: ${reason} at position ${at}`,
    );
  }

  skipSpace(): void {
    SPACE_RE.lastIndex = this.pos;
    SPACE_RE.test(this.text);
    this.pos = SPACE_RE.lastIndex;
  }

  value(depth: number): JsonValue {
    const c = this.text[this.pos];
    if (c === "{") return this.object(depth + 1);
    if (c === "[") return this.array(depth + 1);
    if (c === '"') return this.string();
    for (const [word, value] of LITERALS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    NUMBER_AT_RE.lastIndex = this.pos;
    const match = NUMBER_AT_RE.exec(this.text);
    if (match === null) this.fail("Expecting value");
    this.pos += match[0].length;
    return new JsonNumber(match[0]);
  }

  object(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail("Too deeply nested");
    // No prototype, so "__proto__" is stored as an ordinary key.
    const result: { [key: string]: JsonValue } = Object.create(null);
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return result;
    }
    for (;;) {
      if (this.text[this.pos] !== '"') {
        this.fail("Expecting property name enclosed in double quotes");
      }
      const key = this.string();
      this.skipSpace();
      this.expect(":");
      this.skipSpace();
      result[key] = this.value(depth);
      this.skipSpace();
      if (this.text[this.pos] === "}") {
        this.pos++;
        return result;
      }
      this.expect(",");
      this.skipSpace();
    }
  }

  array(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail("Too deeply nested");
    const result: JsonValue[] = [];
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return result;
    }
    for (;;) {
      result.push(this.value(depth));
      this.skipSpace();
      if (this.text[this.pos] === "]") {
        this.pos++;
        return result;
      }
      this.expect(",");
      this.skipSpace();
    }
  }

  string(): string {
    const text = this.text;
    let out = "";
    const quote = this.pos;
    let start = ++this.pos;
    for (;;) {
      const code = text.charCodeAt(this.pos);
      if (Number.isNaN(code)) this.fail("Unterminated string", quote);
      if (code === 0x22) break;
      if (code < 0x20) this.fail("Invalid control character");
      if (code !== 0x5c) {
        this.pos++;
        continue;
      }
      out += text.slice(start, this.pos);
      const escape = text[this.pos + 1];
      if (escape === "u") {
        const hex = text.slice(this.pos + 2, this.pos + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          this.fail("Invalid \\uXXXX escape", this.pos + 1);
        }
        // Surrogates are kept as single code units, so a pair of escapes
        // becomes one astral character and a lone one stays lone, as in Python.
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 6;
      } else {
        const decoded = ESCAPES.get(escape);
        if (decoded === undefined) this.fail("Invalid \\escape");
        out += decoded;
        this.pos += 2;
      }
      start = this.pos;
    }
    out += text.slice(start, this.pos);
    this.pos++;
    return out;
  }

  expect(char: string): void {
    if (this.text[this.pos] !== char) {
      this.fail(`Expecting '${char}' delimiter`);
    }
    this.pos++;
  }
}

// Tried before the number grammar, which does not cover the float names.
const LITERALS: [string, JsonValue][] = [
  ["null", null],
  ["true", true],
  ["false", false],
  ["NaN", new JsonNumber("NaN")],
  ["Infinity", new JsonNumber("Infinity")],
  ["-Infinity", new JsonNumber("-Infinity")],
];

const ESCAPES = new Map<string | undefined, string>([
  ['"', '"'],
  ["\\", "\\"],
  ["/", "/"],
  ["b", "\b"],
  ["f", "\f"],
  ["n", "\n"],
  ["r", "\r"],
  ["t", "\t"],
]);

/**
 * Serialise a value exactly like Python's `json.dumps(value, sort_keys=True)`:
 * `", "` and `": "` separators, keys sorted by code point, ASCII-only output,
 * and numbers printed as Python prints ints and floats. Plain JS numbers that
 * are integers are written as ints, others as floats.
 *
 * @param value the value to write
 * @returns the JSON text
 * @throws {TypeError} if the value holds something that is not a {@linkcode JsonValue}
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dumpJson, JsonNumber } from "./json.ts";
 *
 * assert.equal(
 *   dumpJson({ b: [1, 0.5, new JsonNumber("1e16")], a: "\u{1F600}" }),
 *   '{"a": "\\ud83d\\ude00", "b": [1, 0.5, 1e+16]}',
 * );
 * ```
 */
export function dumpJson(value: JsonValue): string {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return dumpString(value);
  if (typeof value === "number") {
    // BigInt prints large integers in full (1e21 as 21 digits) and -0 as 0.
    return Number.isInteger(value)
      ? BigInt(value).toString()
      : dumpFloat(value);
  }
  if (value instanceof JsonNumber) {
    if (value.isFloat) return dumpFloat(Number(value.text));
    return value.text === "-0" ? "0" : value.text;
  }
  if (Array.isArray(value)) return `[${value.map(dumpJson).join(", ")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(compareCodePoints);
    const items = keys.map((key) =>
      `${dumpString(key)}: ${dumpJson(value[key])}`
    );
    return `{${items.join(", ")}}`;
  }
  throw new TypeError(`Cannot write ${typeof value} as JSON`);
}

/** Quote a string the way Python's `ensure_ascii` encoder does. */
function dumpString(s: string): string {
  // Everything outside printable ASCII, plus `"` and `\`, is escaped. JS
  // strings are UTF-16, so astral characters come out as surrogate pairs.
  const escaped = s.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, (c) => {
    switch (c) {
      case '"':
        return '\\"';
      case "\\":
        return "\\\\";
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
      case "\b":
        return "\\b";
      case "\f":
        return "\\f";
      default:
        return "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
    }
  });
  return `"${escaped}"`;
}

/** Write a float like Python's `repr(float)`, or the names json.dumps uses. */
function dumpFloat(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // toExponential() with no argument gives the shortest digits that round
  // trip, the same digits repr() picks; only the layout differs.
  const [mantissa, expText] = x.toExponential().split("e");
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const sign = exp < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  const sign = x < 0 ? "-" : "";
  const digits = mantissa.replace("-", "").replace(".", "");
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  if (digits.length <= exp + 1) {
    return `${sign}${digits.padEnd(exp + 1, "0")}.0`;
  }
  return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
}

/**
 * Order strings by Unicode code point, as Python sorts `str`. The default JS
 * sort compares UTF-16 code units, which puts astral characters (surrogate
 * pairs) before U+E000–U+FFFF.
 */
function compareCodePoints(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length) {
    // codePointAt() joins a surrogate pair and returns a lone surrogate as is.
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    i += x > 0xffff ? 2 : 1;
  }
  return a.length - b.length;
}
